/* Token sampling with llama.cpp's meanings, in its order:
 *   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw
 * (greedy when temperature <= 0: argmax after the penalty, lowest id on
 * ties). Candidates are kept sorted by logit, descending (ties by id), so
 * the filters cut prefixes. The RNG is splitmix64 seeded from the params:
 * the same seed and inputs give the same tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model_internal.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct bonsai_sampler {
    bonsai_sampler_params p;
    size_t n_vocab;
    uint64_t rng;
    int32_t *history; /* ring of the last repeat_last_n accepted tokens */
    size_t hist_len, hist_next, hist_cap;
    cand *c;          /* [n_vocab] */
    float *logits;    /* [n_vocab] penalized copy */
};

bonsai_sampler_params bonsai_sampler_default_params(void)
{
    bonsai_sampler_params p = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                               .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
    return p;
}

bonsai_status bonsai_sampler_create(const bonsai_sampler_params *params, size_t n_vocab,
                                    bonsai_sampler **out)
{
    if (!out)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "sampler: out is NULL");
    *out = NULL;
    bonsai_sampler_params p = params ? *params : bonsai_sampler_default_params();
    if (n_vocab == 0 || n_vocab > INT32_MAX)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "sampler: n_vocab = %zu is outside [1, 2^31)",
                           n_vocab);
    if (!isfinite(p.temperature) || !(p.top_p >= 0) || !(p.min_p >= 0) || p.min_p > 1 ||
        !(p.repeat_penalty > 0) || !isfinite(p.repeat_penalty) || p.repeat_last_n < 0)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "sampler: temperature = %g (finite), top_p = %g (>= 0), min_p = %g "
                           "(in [0, 1]), repeat_penalty = %g (> 0), repeat_last_n = %d (>= 0)",
                           (double)p.temperature, (double)p.top_p, (double)p.min_p,
                           (double)p.repeat_penalty, (int)p.repeat_last_n);
    bonsai_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    s->hist_cap = (size_t)p.repeat_last_n;
    s->history = malloc((s->hist_cap ? s->hist_cap : 1) * sizeof *s->history);
    s->c = malloc(n_vocab * sizeof *s->c);
    s->logits = malloc(n_vocab * sizeof *s->logits);
    if (!s->history || !s->c || !s->logits) {
        bonsai_sampler_free(s);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY, "sampler: out of memory for %zu tokens",
                           n_vocab);
    }
    bonsai_sampler_reset(s);
    *out = s;
    return BONSAI_OK;
}

void bonsai_sampler_free(bonsai_sampler *s)
{
    if (!s)
        return;
    free(s->history);
    free(s->c);
    free(s->logits);
    free(s);
}

void bonsai_sampler_reset(bonsai_sampler *s)
{
    if (!s)
        return;
    s->rng = s->p.seed;
    s->hist_len = s->hist_next = 0;
}

bonsai_status bonsai_sampler_accept(bonsai_sampler *s, int32_t token)
{
    if (!s)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "sampler: sampler is NULL");
    if (token < 0 || (size_t)token >= s->n_vocab)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "sampler: token %d is outside [0, %zu)",
                           (int)token, s->n_vocab);
    if (s->hist_cap == 0)
        return BONSAI_OK;
    s->history[s->hist_next] = token;
    s->hist_next = (s->hist_next + 1) % s->hist_cap;
    if (s->hist_len < s->hist_cap)
        s->hist_len++;
    return BONSAI_OK;
}

/* uniform in [0, 1) from splitmix64 */
static double next_uniform(bonsai_sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Penalizes each distinct token of the history once. */
static void apply_repeat_penalty(bonsai_sampler *s)
{
    const float r = s->p.repeat_penalty;
    if (r == 1.0f)
        return;
    for (size_t i = 0; i < s->hist_len; i++) {
        const int32_t t = s->history[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = s->history[j] == t;
        if (!seen)
            s->logits[t] = s->logits[t] > 0 ? s->logits[t] / r : s->logits[t] * r;
    }
}

/* descending logit, then ascending id */
static int before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

static void swap(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Moves the k first (in `before` order) of c[0..n) to c[0..k), unsorted. */
static void select_first(cand *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th lies in [lo, hi) */
    while (hi - lo > 1) {
        swap(&c[lo + (hi - lo) / 2], &c[hi - 1]);
        const cand pivot = c[hi - 1];
        size_t store = lo;
        for (size_t i = lo; i + 1 < hi; i++)
            if (before(&c[i], &pivot))
                swap(&c[i], &c[store++]);
        swap(&c[store], &c[hi - 1]);
        if (store == k || store + 1 == k)
            return;
        if (store > k)
            hi = store;
        else
            lo = store + 1;
    }
}

bonsai_status bonsai_sampler_sample(bonsai_sampler *s, const float *logits, size_t n_vocab,
                                    int32_t *token)
{
    if (!s || !logits || !token)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "sampler: %s is NULL",
                           !s ? "sampler" : !logits ? "logits" : "token");
    if (n_vocab != s->n_vocab)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "sampler: %zu logits given, the sampler was made for %zu", n_vocab,
                           s->n_vocab);
    memcpy(s->logits, logits, n_vocab * sizeof *logits);
    apply_repeat_penalty(s);

    if (s->p.temperature <= 0) {
        size_t best = 0;
        for (size_t i = 1; i < n_vocab; i++)
            if (s->logits[i] > s->logits[best])
                best = i;
        *token = (int32_t)best;
        return BONSAI_OK;
    }

    /* top-k: the k largest, sorted */
    size_t n = n_vocab;
    for (size_t i = 0; i < n; i++)
        s->c[i] = (cand){s->logits[i], (int32_t)i};
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        select_first(s->c, n, (size_t)s->p.top_k);
        n = (size_t)s->p.top_k;
    }
    qsort(s->c, n, sizeof *s->c, cmp_cand);

    /* top-p on the softmax of what is left */
    const float max = s->c[0].logit;
    if (s->p.top_p < 1.0f) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += exp((double)(s->c[i].logit - max));
        double cum = 0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += exp((double)(s->c[i].logit - max)) / total;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: p_i >= min_p * p_max, i.e. logit_i >= max + log(min_p) */
    if (s->p.min_p > 0) {
        const double floor_logit = (double)max + log((double)s->p.min_p);
        size_t keep = 1;
        while (keep < n && (double)s->c[keep].logit >= floor_logit)
            keep++;
        n = keep;
    }

    /* temperature and the draw */
    const double inv_t = 1.0 / (double)s->p.temperature;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += exp((double)(s->c[i].logit - max) * inv_t);
    const double u = next_uniform(s) * total;
    double cum = 0;
    size_t pick = n - 1;
    for (size_t i = 0; i < n; i++) {
        cum += exp((double)(s->c[i].logit - max) * inv_t);
        if (u < cum) {
            pick = i;
            break;
        }
    }
    *token = s->c[pick].id;
    return BONSAI_OK;
}
