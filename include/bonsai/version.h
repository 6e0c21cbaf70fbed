#ifndef BONSAI_VERSION_H
#define BONSAI_VERSION_H
#define BONSAI_VERSION_MAJOR 0
#define BONSAI_VERSION_MINOR 1
#define BONSAI_VERSION_PATCH 0
#ifdef __cplusplus
extern "C" {
#endif
const char *bonsai_version_string(void); /* "0.1.0" */
const char *bonsai_build_commit(void);   /* git commit or "unknown" */
const char *bonsai_build_compiler(void);
#ifdef __cplusplus
}
#endif
#endif
