#include "bonsai/version.h"
#include "bonsai_commit.h" /* generated at build time: BONSAI_GIT_COMMIT */

#define STR2(x) #x
#define STR(x) STR2(x)

const char *bonsai_version_string(void)
{
    return STR(BONSAI_VERSION_MAJOR) "." STR(BONSAI_VERSION_MINOR) "." STR(BONSAI_VERSION_PATCH);
}

const char *bonsai_build_commit(void)
{
    return BONSAI_GIT_COMMIT;
}

const char *bonsai_build_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown compiler";
#endif
}
