"""Reading and writing: data sets, parameter files, model files."""
