/* Token sampling with llama.cpp's meanings, in its order:
 *   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw
 * (greedy when temperature <= 0: argmax after the penalty, lowest id on
 * ties). The filters keep prefixes of the candidates sorted by logit
 * (descending, ties by id): top-k is one pass with a heap, and only the
 * candidates above the filters' floor are sorted, so a step costs about
 * one pass over the vocabulary. The RNG is splitmix64 seeded from the params:
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
    cand *pool;       /* [n_vocab] top-k survivors */
    cand *c;          /* [n_vocab] candidates above the filters' floor, sorted */
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
    s->pool = malloc(n_vocab * sizeof *s->pool);
    s->c = malloc(n_vocab * sizeof *s->c);
    s->logits = malloc(n_vocab * sizeof *s->logits);
    if (!s->history || !s->pool || !s->c || !s->logits) {
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
    free(s->pool);
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

/* Restores the min-heap (root = last in `before` order) below i. */
static void sift_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(&h[w], &h[l]))
            w = l;
        if (r < n && before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k first logits in `before` order into out[0..k), unsorted: one pass
 * with a heap of k, whose root is the one a newcomer must beat. */
static void select_top_k(const float *l, size_t n, size_t k, cand *out)
{
    for (size_t i = 0; i < k; i++)
        out[i] = (cand){l[i], (int32_t)i};
    for (size_t i = k / 2; i-- > 0;)
        sift_down(out, k, i);
    for (size_t i = k; i < n; i++) {
        const cand c = {l[i], (int32_t)i};
        if (before(&c, &out[0])) {
            out[0] = c;
            sift_down(out, k, 0);
        }
    }
}

/* Candidates (from src[0..n), or every logit when src is NULL) whose logit
 * is >= floor, into dst; returns the count. */
static size_t gather(const cand *src, size_t n, const float *l, float floor, cand *dst)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const cand c = src ? src[i] : (cand){l[i], (int32_t)i};
        if (c.logit >= floor)
            dst[m++] = c;
    }
    return m;
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
    const float *l = logits;
    if (s->p.repeat_penalty != 1.0f && s->hist_len > 0) {
        memcpy(s->logits, logits, n_vocab * sizeof *logits);
        apply_repeat_penalty(s);
        l = s->logits;
    }

    if (s->p.temperature <= 0) {
        size_t best = 0;
        float best_logit = l[0];
        for (size_t i = 1; i < n_vocab; i++)
            if (l[i] > best_logit) {
                best_logit = l[i];
                best = i;
            }
        *token = (int32_t)best;
        return BONSAI_OK;
    }

    /* top-k: the k largest (unsorted); without it every token stays */
    const cand *pool = NULL; /* NULL: all of l */
    size_t n = n_vocab;
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n_vocab) {
        n = (size_t)s->p.top_k;
        select_top_k(l, n_vocab, n, s->pool);
        pool = s->pool;
    }
    float max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        max = fmaxf(max, pool ? pool[i].logit : l[i]);

    /* The filters keep a prefix of the candidates sorted by logit, so only
     * those above a floor need sorting: min-p's floor, max + log(min_p);
     * top-p's, lowered until what is above it holds top_p of the mass
     * (softmax over every candidate left by top-k). */
    const float minp_floor = s->p.min_p > 0 ? max + logf(s->p.min_p) : -INFINITY;
    size_t m;
    double total = 0;
    if (s->p.top_p < 1.0f) {
        for (size_t i = 0; i < n; i++)
            total += exp((double)(pool ? pool[i].logit : l[i]) - max);
        for (float depth = 4.0f;; depth *= 2) {
            const float floor = fmaxf(max - depth, minp_floor);
            m = gather(pool, n, l, floor, s->c);
            double mass = 0;
            for (size_t i = 0; i < m; i++)
                mass += exp((double)s->c[i].logit - max);
            if (mass >= (double)s->p.top_p * total || floor == minp_floor || m == n ||
                depth > 1e30f)
                break;
        }
    } else {
        m = gather(pool, n, l, minp_floor, s->c);
    }
    qsort(s->c, m, sizeof *s->c, cmp_cand);

    /* top-p: smallest prefix whose probability reaches top_p */
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        for (size_t i = 0; i < m; i++) {
            cum += exp((double)s->c[i].logit - max) / total;
            if (cum >= s->p.top_p) {
                m = i + 1;
                break;
            }
        }
    }
    /* min-p already held by the floor; at least the best token stays */
    if (m == 0)
        m = 1;

    /* temperature and the draw */
    const double inv_t = 1.0 / (double)s->p.temperature;
    double sum = 0;
    for (size_t i = 0; i < m; i++)
        sum += exp(((double)s->c[i].logit - max) * inv_t);
    const double u = next_uniform(s) * sum;
    double cum = 0;
    size_t pick = m - 1;
    for (size_t i = 0; i < m; i++) {
        cum += exp(((double)s->c[i].logit - max) * inv_t);
        if (u < cum) {
            pick = i;
            break;
        }
    }
    *token = s->c[pick].id;
    return BONSAI_OK;
}
