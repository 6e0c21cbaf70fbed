/* Minimal test harness: checks counted per case, a seeded RNG, and the
 * closing line "N passed, N failed, N skipped". Include once per test
 * executable. Set BONSAI_TEST_SEED to replay a failing run. */
#ifndef BONSAI_TEST_HARNESS_H
#define BONSAI_TEST_HARNESS_H
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static struct {
    int passed, failed, skipped;
    uint64_t seed;
    uint64_t rng;
} harness;

static inline void harness_init(void)
{
    const char *env = getenv("BONSAI_TEST_SEED");
    harness.seed = env ? strtoull(env, NULL, 0)
                       : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    harness.rng = harness.seed;
}

/* splitmix64 */
static inline uint64_t rng_u64(void)
{
    uint64_t z = (harness.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static inline float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_u64() >> 40) * (1.0 / 16777216.0));
}

/* roughly normal (sum of uniforms), mean 0, sd 1 */
static inline float rng_normal(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += rng_uniform(-1.0f, 1.0f);
    return s * 0.8660254f;
}

/* Records one check; prints the failure with its location and the seed. */
static inline int check_at(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        harness.passed++;
        return 1;
    }
    harness.failed++;
    fprintf(stderr, "FAIL %s:%d (seed %llu): ", file, line, (unsigned long long)harness.seed);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}
#define CHECK(cond, ...) check_at((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

static inline void skip(const char *fmt, ...)
{
    harness.skipped++;
    fprintf(stderr, "SKIP: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static inline int harness_finish(void)
{
    if (harness.failed)
        printf("seed %llu (BONSAI_TEST_SEED to replay)\n", (unsigned long long)harness.seed);
    printf("%d passed, %d failed, %d skipped\n", harness.passed, harness.failed,
           harness.skipped);
    return harness.failed ? 1 : 0;
}

/* Normalised mean squared error of got against a float64 reference. */
static inline double nmse(const float *got, const double *ref, size_t n)
{
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        err += d * d;
        norm += ref[i] * ref[i];
    }
    if (norm == 0)
        return err == 0 ? 0 : INFINITY;
    return isnan(err) ? INFINITY : err / norm;
}

/* Like nmse, but each output's squared reference is floored by floor2[i]
 * (e.g. the sum of its squared product terms, the scale of its fp32
 * rounding), so an output that cancels to near zero is judged on the
 * rounding its terms allow rather than on its tiny value. */
static inline double nmse_floored(const float *got, const double *ref, const double *floor2,
                                  size_t n)
{
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i], r2 = ref[i] * ref[i];
        err += d * d;
        norm += r2 > floor2[i] ? r2 : floor2[i];
    }
    return norm > 0 && !isnan(err) ? err / norm : err == 0 ? 0 : INFINITY;
}

#endif
