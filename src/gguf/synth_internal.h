/* Internal: pieces of the synthetic-model writer. */
#ifndef BONSAI_SYNTH_INTERNAL_H
#define BONSAI_SYNTH_INTERNAL_H
#include <stdint.h>

#include "gguf/gguf_writer.h"

/* Adds the tokenizer.* keys of a byte-level BPE ("gpt2") vocabulary of
 * n_vocab tokens (synth_tokenizer.c). */
bonsai_status synth_add_tokenizer(bonsai_gguf_writer *w, uint32_t n_vocab);

/* xorshift64* : cheap enough to generate billions of weights. */
static inline uint64_t synth_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [-1, 1): 23 random mantissa bits on the exponent of [2, 4). */
static inline float synth_rng_uniform(uint64_t *s)
{
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)(synth_rng_next(s) >> 41) | 0x40000000u};
    return v.f - 3.0f;
}

/* A well-mixed non-zero state from a seed and a stream number (splitmix64). */
static inline uint64_t synth_rng_seed(uint64_t seed, uint64_t stream)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (stream + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 0x853c49e6748fea9bull;
}

#endif
