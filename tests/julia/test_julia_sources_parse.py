"""The Julia sources parse (tree-sitter-julia), where that parser is installed.

No Julia can run on the project's machines; a parser at least catches syntax errors (unbalanced
blocks, stray tokens) in julia/HybridPotKernels. It says nothing about types or behaviour.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).resolve().parents[2] / "julia" / "HybridPotKernels").rglob("*.jl"))


def _problems(tree, source: bytes) -> list[str]:
    out, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            out.append(f"line {node.start_point[0] + 1}: {'missing ' + node.type if node.is_missing else 'syntax error'}")
        stack.extend(node.children)
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_julia_source_parses(path: Path) -> None:
    tree_sitter = pytest.importorskip("tree_sitter", reason="tree-sitter not installed (pip install tree-sitter tree-sitter-julia)")
    julia = pytest.importorskip("tree_sitter_julia", reason="tree-sitter-julia not installed (pip install tree-sitter-julia)")
    parser = tree_sitter.Parser(tree_sitter.Language(julia.language()))
    source = path.read_bytes()
    assert not _problems(parser.parse(source), source), f"{path}: {_problems(parser.parse(source), source)}"


def test_the_parser_check_catches_an_error(tmp_path: Path) -> None:
    tree_sitter = pytest.importorskip("tree_sitter", reason="tree-sitter not installed")
    julia = pytest.importorskip("tree_sitter_julia", reason="tree-sitter-julia not installed")
    parser = tree_sitter.Parser(tree_sitter.Language(julia.language()))
    source = b"function f(x)\n    y = (x +\nend\n"
    assert _problems(parser.parse(source), source)


def test_there_are_julia_sources() -> None:
    assert len(SOURCES) >= 10
