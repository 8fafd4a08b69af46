// Reader of hybridpot-lammps model files (lammps-plugin/FORMAT.md): header, checksum, then sections.
#include "model.h"
#include "sha256.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace hybridpot {

namespace {

const int FILE_VERSION = 1;

// Whitespace-separated tokens of the body, '#' comments skipped, with the line of each for messages.
class Tokens {
 public:
  Tokens(const std::string &path, const std::string &body, int first_line) : path_(path)
  {
    int line = first_line;
    size_t i = 0, n = body.size();
    while (i < n) {
      char ch = body[i];
      if (ch == '\n') {
        ++line;
        ++i;
      } else if (ch == '#') {
        while (i < n && body[i] != '\n') ++i;
      } else if (ch == ' ' || ch == '\t' || ch == '\r') {
        ++i;
      } else {
        size_t j = i;
        while (j < n && body[j] != ' ' && body[j] != '\t' && body[j] != '\r' && body[j] != '\n' && body[j] != '#') ++j;
        words_.emplace_back(body.substr(i, j - i));
        lines_.push_back(line);
        i = j;
      }
    }
  }

  [[noreturn]] void fail(const std::string &what) const
  {
    std::ostringstream msg;
    msg << path_ << ", line " << (pos_ < lines_.size() ? lines_[pos_] : (lines_.empty() ? 0 : lines_.back()))
        << ": " << what;
    throw std::runtime_error(msg.str());
  }

  const std::string &next(const char *what)
  {
    if (pos_ >= words_.size()) fail(std::string("unexpected end of file, expected ") + what);
    return words_[pos_++];
  }
  const std::string &peek() const
  {
    static const std::string none;
    return pos_ < words_.size() ? words_[pos_] : none;
  }
  void expect(const char *keyword)
  {
    if (peek() != keyword) fail(std::string("expected '") + keyword + "', found '" + peek() + "'");
    ++pos_;
  }
  long integer(const char *what)
  {
    const std::string &w = next(what);
    char *end = nullptr;
    long v = std::strtol(w.c_str(), &end, 10);
    if (end == w.c_str() || *end != '\0') {
      --pos_;
      fail(std::string("expected an integer (") + what + "), found '" + w + "'");
    }
    return v;
  }
  double real(const char *what)
  {
    const std::string &w = next(what);
    char *end = nullptr;
    double v = std::strtod(w.c_str(), &end);
    if (end == w.c_str() || *end != '\0' || !std::isfinite(v)) {
      --pos_;
      fail(std::string("expected a finite number (") + what + "), found '" + w + "'");
    }
    return v;
  }
  void reals(std::vector<double> &out, size_t n, const char *what)
  {
    out.resize(n);
    for (size_t k = 0; k < n; ++k) out[k] = real(what);
  }
  bool done() const { return pos_ >= words_.size(); }

 private:
  std::string path_;
  std::vector<std::string> words_;
  std::vector<int> lines_;
  size_t pos_ = 0;
};

void read_descriptor(Tokens &tk, ModelFile &mf)
{
  const int T = static_cast<int>(mf.elements.size());
  Descriptor &d = mf.descriptor;
  tk.expect("descriptor");
  tk.expect("so3");
  tk.expect("rcut");
  d.rcut = tk.real("rcut");
  tk.expect("nmax");
  d.nmax = static_cast<int>(tk.integer("nmax"));
  tk.expect("lmax");
  d.lmax = static_cast<int>(tk.integer("lmax"));
  tk.expect("channels");
  d.n_channels = static_cast<int>(tk.integer("channels"));
  if (!(d.rcut > 0 && d.nmax >= 1 && d.lmax >= 0 && d.lmax <= 20 && d.n_channels >= 1 && d.n_channels <= T))
    tk.fail("bad descriptor parameters");
  d.L = d.lmax + 1;
  d.L2 = d.L * d.L;
  d.nu = d.n_channels * d.nmax;
  for (int l = 0; l <= d.lmax; ++l)
    for (int m = -l; m <= l; ++m) {
      d.l_of_lm.push_back(l);
      d.parity.push_back(l % 2 ? -1.0 : 1.0);
    }
  tk.expect("weights");
  tk.reals(d.weight, T, "neighbour weight");
  tk.expect("channel");
  d.channel.resize(T);
  for (int t = 0; t < T; ++t) {
    d.channel[t] = static_cast<int>(tk.integer("channel"));
    if (d.channel[t] < 0 || d.channel[t] >= d.n_channels) tk.fail("channel out of range");
  }
  RadialSpline &s = d.spline;
  tk.expect("spline");
  s.n_intervals = static_cast<int>(tk.integer("number of spline intervals"));
  s.h = tk.real("spline spacing");
  if (s.n_intervals < 1 || !(s.h > 0) || std::fabs(s.h * s.n_intervals - d.rcut) > 1e-9 * d.rcut)
    tk.fail("spline intervals times spacing must equal rcut");
  s.nmax = d.nmax;
  s.lmax = d.lmax;
  s.nq = d.nmax * d.L;
  s.rcut = d.rcut;
  tk.reals(s.coef, size_t(s.n_intervals) * 6 * s.nq, "spline coefficient");
  d.ylm.init(d.lmax);

  Invariants &inv = d.invariants;
  inv.nu = d.nu;
  inv.lmax = d.lmax;
  inv.L2 = d.L2;
  tk.expect("invariants");
  const std::string kind = tk.next("invariants kind");
  inv.n_features = static_cast<int>(tk.integer("number of features"));
  if (inv.n_features < 1) tk.fail("no features");
  const int K = inv.n_features;
  if (kind == "power") {
    inv.bispectrum = false;
    inv.a.resize(K);
    inv.b.resize(K);
    inv.l.resize(K);
    inv.norm.resize(K);
    for (int k = 0; k < K; ++k) {
      inv.a[k] = static_cast<int>(tk.integer("channel a"));
      inv.b[k] = static_cast<int>(tk.integer("channel b"));
      inv.l[k] = static_cast<int>(tk.integer("l"));
      inv.norm[k] = tk.real("norm");
      if (inv.a[k] < 0 || inv.a[k] >= d.nu || inv.b[k] < 0 || inv.b[k] >= d.nu || inv.l[k] < 0 || inv.l[k] > d.lmax)
        tk.fail("power spectrum feature out of range");
    }
  } else if (kind == "bispectrum") {
    inv.bispectrum = true;
    const int NT = static_cast<int>(tk.integer("number of triples"));
    inv.entry_start.push_back(0);
    for (int t = 0; t < NT; ++t) {
      tk.expect("triple");
      const int l1 = static_cast<int>(tk.integer("l1")), l2 = static_cast<int>(tk.integer("l2"));
      const int l = static_cast<int>(tk.integer("l"));
      if (l1 < 0 || l2 < 0 || l < 0 || l1 > d.lmax || l2 > d.lmax || l > d.lmax) tk.fail("triple out of range");
      inv.t_l1.push_back(l1);
      inv.t_l2.push_back(l2);
      inv.t_l.push_back(l);
      for (int m1 = 0; m1 < 2 * l1 + 1; ++m1)
        for (int m2 = 0; m2 < 2 * l2 + 1; ++m2)
          for (int m = 0; m < 2 * l + 1; ++m) {
            const double v = tk.real("Clebsch-Gordan coefficient");
            if (v == 0.0) continue;    // the tensor is sparse: keep its non-zero entries
            inv.entry_m.insert(inv.entry_m.end(), {m1, m2, m});
            inv.entry_value.push_back(v);
          }
      inv.entry_start.push_back(static_cast<int>(inv.entry_value.size()));
    }
    inv.a.resize(K);
    inv.b.resize(K);
    inv.t_of.resize(K);
    for (int k = 0; k < K; ++k) {
      inv.a[k] = static_cast<int>(tk.integer("channel a"));
      inv.b[k] = static_cast<int>(tk.integer("channel b"));
      inv.t_of[k] = static_cast<int>(tk.integer("triple"));
      if (inv.a[k] < 0 || inv.a[k] >= d.nu || inv.b[k] < 0 || inv.b[k] >= d.nu || inv.t_of[k] < 0 || inv.t_of[k] >= NT)
        tk.fail("bispectrum feature out of range");
    }
  } else {
    tk.fail("unknown invariants '" + kind + "' (expected power or bispectrum)");
  }
}

void read_model(Tokens &tk, Model &m, int T, int K)
{
  tk.expect("model");
  const std::string kind = tk.next("model kind");
  m.n_elements = T;
  m.n_features = K;
  if (kind == "linear" || kind == "quadratic") {
    m.kind = kind == "linear" ? MODEL_LINEAR : MODEL_QUADRATIC;
    m.block = static_cast<int>(tk.integer("parameters per element"));
    const int expected = 1 + K + (m.kind == MODEL_QUADRATIC ? K * (K + 1) / 2 : 0);
    if (m.block != expected) tk.fail("wrong number of parameters per element for a " + kind + " model");
    tk.reals(m.coef, size_t(T) * m.block, "model coefficient");
  } else if (kind == "nn") {
    m.kind = MODEL_NN;
    const int n_hidden = static_cast<int>(tk.integer("number of hidden layers"));
    if (n_hidden < 0 || n_hidden > 100) tk.fail("bad number of hidden layers");
    m.widths.clear();
    for (int layer = 0; layer < n_hidden; ++layer) {
      m.widths.push_back(static_cast<int>(tk.integer("layer width")));
      if (m.widths.back() < 1) tk.fail("bad layer width");
    }
    m.widths.push_back(1);
    const std::string act = tk.next("activation");
    if (act == "tanh") m.activation = ACT_TANH;
    else if (act == "sigmoid") m.activation = ACT_SIGMOID;
    else if (act == "relu") m.activation = ACT_RELU;
    else if (act == "linear") m.activation = ACT_LINEAR;
    else tk.fail("unknown activation '" + act + "'");
    // node groups (the input first) and, per element, shift K, scale K, then per layer W (out x in) and b
    const int nl = static_cast<int>(m.widths.size());
    m.node_offsets.assign(nl + 1, 0);
    m.node_offsets[1] = K;
    for (int layer = 1; layer < nl; ++layer) m.node_offsets[layer + 1] = m.node_offsets[layer] + m.widths[layer - 1];
    m.param_offsets.assign(nl, 0);
    int offset = 2 * K, in = K;
    for (int layer = 0; layer < nl; ++layer) {
      m.param_offsets[layer] = offset;
      offset += m.widths[layer] * in + m.widths[layer];
      in = m.widths[layer];
    }
    m.block = offset;
    tk.reals(m.coef, size_t(T) * m.block, "nn input shift and scale, weights and biases");
    for (int t = 0; t < T; ++t)
      for (int k = 0; k < K; ++k)
        if (m.coef[size_t(t) * m.block + K + k] == 0.0) tk.fail("zero input scale");
  } else if (kind == "committee") {
    m.kind = MODEL_COMMITTEE;
    const int C = static_cast<int>(tk.integer("committee size"));
    if (C < 1) tk.fail("empty committee");
    m.members.resize(C);
    for (int c = 0; c < C; ++c) {
      read_model(tk, m.members[c], T, K);
      if (m.members[c].kind == MODEL_COMMITTEE) tk.fail("nested committees are not supported");
    }
  } else if (kind == "kernel") {
    m.kind = MODEL_KERNEL;
    const std::string function = tk.next("kernel function");
    if (function != "polynomial" && function != "se") tk.fail("unknown kernel '" + function + "' (expected polynomial or se)");
    m.kernel_se = function == "se" ? 1 : 0;
    m.zeta = static_cast<int>(tk.integer("kernel zeta"));
    if (m.zeta < 1) tk.fail("kernel zeta must be >= 1");
    m.length = tk.real("kernel length scale");
    if (!(m.length > 0.0)) tk.fail("kernel length scale must be > 0");
    m.n_sparse = static_cast<int>(tk.integer("sparse points per element"));
    if (m.n_sparse < 1) tk.fail("kernel model without sparse points");
    m.block = 1 + m.n_sparse * (1 + K);
    tk.reals(m.coef, size_t(T) * m.block, "kernel e_t, weights and sparse points");
    if (tk.peek() == "kernel_linear") {    // optional linear term: each element's block gains v_t <K>
      tk.expect("kernel_linear");
      std::vector<double> v;
      tk.reals(v, size_t(T) * K, "the kernel's linear-term weights");
      std::vector<double> blocks(size_t(T) * (m.block + K));
      for (int t = 0; t < T; ++t) {
        std::copy(m.coef.begin() + size_t(t) * m.block, m.coef.begin() + size_t(t + 1) * m.block, blocks.begin() + size_t(t) * (m.block + K));
        std::copy(v.begin() + size_t(t) * K, v.begin() + size_t(t + 1) * K, blocks.begin() + size_t(t) * (m.block + K) + m.block);
      }
      m.coef.swap(blocks);
      m.block += K;
      m.kernel_linear = 1;
    }
  } else {
    tk.fail("unknown model '" + kind + "' (expected linear, quadratic, nn, committee or kernel)");
  }
}

void read_extrapolation(Tokens &tk, ModelFile &mf)
{
  const int T = static_cast<int>(mf.elements.size());
  const int K = mf.descriptor.invariants.n_features;
  Extrapolation &x = mf.extrapolation;
  tk.expect("active_set");
  if (tk.peek() == "none") {
    tk.next("none");
    x.M = 0;
  } else {
    x.M = static_cast<int>(tk.integer("active set size"));
    if (x.M != K + 1) tk.fail("the active set must have K + 1 columns");
    tk.reals(x.inv, size_t(T) * x.M * x.M, "inverse active set entry");
  }
  tk.expect("fallback");
  if (tk.peek() == "none") {
    tk.next("none");
    x.fallback = false;
    return;
  }
  tk.expect("gamma");
  x.fallback = true;
  x.p = static_cast<int>(tk.integer("p"));
  x.lower = tk.real("lower");
  x.upper = tk.real("upper");
  if (x.p < 2 || x.p % 2 || !(x.lower >= 0 && x.lower < x.upper)) tk.fail("bad fallback parameters");
  if (x.M == 0) tk.fail("a fallback needs the active set");
  tk.expect("reference");
  tk.reals(x.reference, T, "reference energy");
}

void read_baseline(Tokens &tk, ModelFile &mf)
{
  const int T = static_cast<int>(mf.elements.size());
  tk.expect("baseline");
  const std::string kind = tk.next("baseline kind");
  if (kind == "none") {
    mf.baseline = ModelFile::NONE;
  } else if (kind == "eam") {
    mf.baseline = ModelFile::EAM_BASELINE;
    EAM &e = mf.eam;
    e.n_elements = T;
    e.nrho = static_cast<int>(tk.integer("nrho"));
    e.drho = tk.real("drho");
    e.nr = static_cast<int>(tk.integer("nr"));
    e.dr = tk.real("dr");
    e.cutoff = tk.real("cutoff");
    e.rhomax = tk.real("rhomax");
    e.scale = tk.real("energy scale");
    if (e.nrho < 5 || e.nr < 5 || !(e.drho > 0 && e.dr > 0 && e.cutoff > 0)) tk.fail("bad EAM grid");
    tk.expect("frho");
    tk.reals(e.frho, size_t(T) * (e.nrho - 1) * 4, "frho spline coefficient");
    tk.expect("rhor");
    tk.reals(e.rhor, size_t(T) * (e.nr - 1) * 4, "rhor spline coefficient");
    tk.expect("z2r");
    tk.reals(e.z2r, size_t(T * (T + 1) / 2) * (e.nr - 1) * 4, "z2r spline coefficient");
  } else if (kind == "lj") {
    mf.baseline = ModelFile::LJ_BASELINE;
    LennardJones &lj = mf.lj;
    lj.n_elements = T;
    lj.shift = tk.integer("shift") != 0;
    lj.epsilon.assign(T * T, 0.0);
    lj.sigma.assign(T * T, 0.0);
    lj.cutoff.assign(T * T, 0.0);
    for (int a = 0; a < T; ++a)
      for (int b = a; b < T; ++b) {
        const double eps = tk.real("epsilon"), sig = tk.real("sigma"), rc = tk.real("cutoff");
        if (!(sig > 0 && eps >= 0 && rc > 0)) tk.fail("bad Lennard-Jones parameters");
        lj.epsilon[a * T + b] = lj.epsilon[b * T + a] = eps;
        lj.sigma[a * T + b] = lj.sigma[b * T + a] = sig;
        lj.cutoff[a * T + b] = lj.cutoff[b * T + a] = rc;
        if (rc > lj.max_cutoff) lj.max_cutoff = rc;
      }
  } else if (kind == "tersoff") {
    mf.baseline = ModelFile::TERSOFF_BASELINE;
    Tersoff &ts = mf.tersoff;
    ts.n_elements = T;
    tk.reals(ts.p, size_t(T) * T * T * Tersoff::N_FIELDS, "Tersoff parameter");
    for (int row = 0; row < T * T * T; ++row) {
      const double m = ts.param(row, Tersoff::M);
      if (!(m == 1.0 || m == 3.0)) tk.fail("Tersoff m must be 1 or 3");
      if (ts.cut(row) > ts.max_cutoff) ts.max_cutoff = ts.cut(row);
    }
  } else if (kind == "external") {
    mf.baseline = ModelFile::EXTERNAL_BASELINE;
    mf.external_style = tk.next("LAMMPS pair style of the external baseline");
  } else {
    tk.fail("unknown baseline '" + kind + "' (expected none, eam, lj, tersoff or external)");
  }
}

}    // namespace

ModelFile read_model_file(const std::string &path)
{
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open model file " + path);
  std::ostringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  // two header lines: "hybridpot-lammps VERSION" and "sha256 HEX"
  const size_t end1 = text.find('\n');
  const size_t end2 = end1 == std::string::npos ? std::string::npos : text.find('\n', end1 + 1);
  if (end2 == std::string::npos) throw std::runtime_error(path + ": not a hybridpot-lammps model file (no header)");
  std::istringstream line1(text.substr(0, end1)), line2(text.substr(end1 + 1, end2 - end1 - 1));
  std::string magic, version_word, sha_word, sha;
  line1 >> magic >> version_word;
  line2 >> sha_word >> sha;
  if (magic != "hybridpot-lammps")
    throw std::runtime_error(path + ": not a hybridpot-lammps model file (it starts with '" + magic +
                             "'; write one with `hybridpot export --lammps`)");
  ModelFile mf;
  mf.version = std::atoi(version_word.c_str());
  if (mf.version != FILE_VERSION)
    throw std::runtime_error(path + ": model file version " + version_word + " is not supported (this plugin reads version " +
                             std::to_string(FILE_VERSION) + "); export the model again with the hybridpot that built this plugin");
  const std::string body = text.substr(end2 + 1);
  if (sha_word != "sha256") throw std::runtime_error(path + ": line 2 must be 'sha256 <checksum>'");
  const std::string actual = sha256_hex(body);
  if (actual != sha)
    throw std::runtime_error(path + ": checksum mismatch (the file says sha256 " + sha + ", its content has " + actual +
                             "): the file was edited or damaged after export; export it again");
  mf.sha256 = sha;
  Tokens tk(path, body, 3);
  tk.expect("elements");
  const long T = tk.integer("number of elements");
  if (T < 1 || T > 118) tk.fail("bad number of elements");
  for (long t = 0; t < T; ++t) mf.elements.push_back(tk.next("element symbol"));
  tk.expect("cutoff");
  mf.cutoff = tk.real("cutoff");
  read_descriptor(tk, mf);
  read_model(tk, mf.model, static_cast<int>(T), mf.descriptor.invariants.n_features);
  mf.model.finalize();
  read_extrapolation(tk, mf);
  read_baseline(tk, mf);
  tk.expect("end");
  if (!tk.done()) tk.fail("content after 'end'");
  double needed = mf.descriptor.rcut;
  if (mf.baseline == ModelFile::EAM_BASELINE) needed = std::fmax(needed, mf.eam.cutoff);
  if (mf.baseline == ModelFile::LJ_BASELINE) needed = std::fmax(needed, mf.lj.max_cutoff);
  if (mf.baseline == ModelFile::TERSOFF_BASELINE) needed = std::fmax(needed, mf.tersoff.max_cutoff);
  if (mf.cutoff < needed * (1 - 1e-12)) tk.fail("the cutoff is smaller than the descriptor's or the baseline's");
  return mf;
}

}    // namespace hybridpot
