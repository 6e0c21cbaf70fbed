/* Sampler statistics on fixed logits, expected sets and probabilities
 * computed here in double:
 *   greedy picks the argmax (lowest id on ties);
 *   top-k / top-p / min-p never pick an excluded token, and the kept ones
 *   come with their renormalised softmax frequencies;
 *   temperature frequencies match softmax(logits / T) within 5 sigma;
 *   repetition penalty divides positive and multiplies negative logits of
 *   the last repeat_last_n accepted tokens;
 *   the same seed gives the same sequence, reset replays it;
 *   bad arguments give their status. */
#include <string.h>

#include "bonsai/bonsai.h"
#include "harness.h"

#define DRAWS 40000

static bonsai_sampler_params plain(float temp)
{
    bonsai_sampler_params p = bonsai_sampler_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = rng_u64();
    return p;
}

static void random_logits(float *l, size_t n, float spread)
{
    for (size_t i = 0; i < n; i++)
        l[i] = rng_normal() * spread;
}

/* expected[i] = softmax(l / t) over the tokens with keep[i] */
static void expected_probs(const float *l, const int *keep, size_t n, double t, double *out)
{
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i] && l[i] > mx)
            mx = l[i];
    for (size_t i = 0; i < n; i++)
        sum += out[i] = keep[i] ? exp((l[i] - mx) / t) : 0;
    for (size_t i = 0; i < n; i++)
        out[i] /= sum;
}

/* Draws DRAWS tokens; checks none falls outside keep and each frequency is
 * within 5 sigma (+ 0.002) of the expected probability. */
static void check_draws_n(const char *what, const bonsai_sampler_params *p, const float *l,
                          const int *keep, size_t n, int draws)
{
    bonsai_sampler *s = NULL;
    if (!CHECK(bonsai_sampler_create(p, n, &s) == BONSAI_OK, "%s: create", what))
        return;
    double *want = malloc(n * sizeof *want);
    expected_probs(l, keep, n, p->temperature, want);
    size_t *count = calloc(n, sizeof *count);
    int outside = 0, errors = 0;
    for (int d = 0; d < draws; d++) {
        int32_t tok = -1;
        errors += bonsai_sampler_sample(s, l, n, &tok) != BONSAI_OK;
        if (tok < 0 || (size_t)tok >= n || !keep[tok])
            outside++;
        else
            count[tok]++;
    }
    int off = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double f = (double)count[i] / draws;
        double sigma = sqrt(want[i] * (1 - want[i]) / draws);
        double dev = fabs(f - want[i]);
        if (dev > 5 * sigma + 0.002)
            off++;
        worst = dev > worst ? dev : worst;
    }
    CHECK(errors == 0 && outside == 0 && off == 0,
          "%s: %d errors, %d draws of excluded tokens, %d frequencies off (worst |f - p| %.4f)",
          what, errors, outside, off, worst);
    free(want);
    free(count);
    bonsai_sampler_free(s);
}

static void check_draws(const char *what, const bonsai_sampler_params *p, const float *l,
                        const int *keep, size_t n)
{
    check_draws_n(what, p, l, keep, n, DRAWS);
}

static void test_greedy(void)
{
    enum { N = 1000 };
    float l[N];
    bonsai_sampler_params p = plain(0.0f);
    p.top_k = 3; /* filters do not matter to greedy */
    bonsai_sampler *s = NULL;
    bonsai_sampler_create(&p, N, &s);
    int wrong = 0;
    for (int trial = 0; trial < 50; trial++) {
        random_logits(l, N, 3.0f);
        size_t best = 0;
        for (size_t i = 1; i < N; i++)
            best = l[i] > l[best] ? i : best;
        int32_t tok = -1;
        bonsai_sampler_sample(s, l, N, &tok);
        wrong += tok != (int32_t)best;
    }
    CHECK(wrong == 0, "greedy picks the argmax: %d of 50 wrong", wrong);
    for (size_t i = 0; i < N; i++)
        l[i] = 0;
    l[7] = l[3] = l[900] = 1.0f;
    int32_t tok = -1;
    bonsai_sampler_sample(s, l, N, &tok);
    CHECK(tok == 3, "greedy tie goes to the lowest id: got %d", (int)tok);
    bonsai_sampler_free(s);
}

static void test_temperature(void)
{
    enum { N = 8 };
    float l[N];
    int keep[N];
    for (size_t i = 0; i < N; i++)
        keep[i] = 1;
    const float temps[] = {1.0f, 0.5f, 2.0f};
    for (size_t ti = 0; ti < 3; ti++) {
        random_logits(l, N, 1.0f);
        bonsai_sampler_params p = plain(temps[ti]);
        char what[64];
        snprintf(what, sizeof what, "temperature %.1f", (double)temps[ti]);
        check_draws(what, &p, l, keep, N);
    }
}

static int by_logit_desc(const void *a, const void *b, const float *l)
{
    int i = *(const int *)a, j = *(const int *)b;
    return l[i] > l[j] ? -1 : l[i] < l[j] ? 1 : i - j;
}

static const float *sort_logits;
static int cmp_idx(const void *a, const void *b)
{
    return by_logit_desc(a, b, sort_logits);
}

static void test_filters(void)
{
    enum { N = 50 };
    float l[N];
    int keep[N], order[N];
    random_logits(l, N, 2.0f);
    for (int i = 0; i < N; i++)
        order[i] = i;
    sort_logits = l;
    qsort(order, N, sizeof order[0], cmp_idx);

    /* top-k = 5: the five largest */
    bonsai_sampler_params p = plain(1.0f);
    p.top_k = 5;
    memset(keep, 0, sizeof keep);
    for (int i = 0; i < 5; i++)
        keep[order[i]] = 1;
    check_draws("top-k 5", &p, l, keep, N);

    /* top-p = 0.7: smallest prefix by probability whose mass reaches 0.7 */
    int all[N];
    double prob[N];
    for (int i = 0; i < N; i++)
        all[i] = 1;
    expected_probs(l, all, N, 1.0, prob);
    p = plain(1.0f);
    p.top_p = 0.7f;
    memset(keep, 0, sizeof keep);
    double cum = 0;
    for (int i = 0; i < N && cum < 0.7; i++) {
        keep[order[i]] = 1;
        cum += prob[order[i]];
    }
    check_draws("top-p 0.7", &p, l, keep, N);

    /* min-p = 0.1: p_i >= 0.1 * p_max */
    p = plain(1.0f);
    p.min_p = 0.1f;
    for (int i = 0; i < N; i++)
        keep[i] = prob[i] >= 0.1 * prob[order[0]];
    check_draws("min-p 0.1", &p, l, keep, N);

    /* top-p 0.99 where the mass sits far below the best logit: one token at
     * 10, a thousand at 0 (the best holds 0.957): the kept set is the best
     * and the lowest ids at 0 until 0.99 is reached */
    {
        enum { NF = 1001 };
        float flat[NF];
        int keep_flat[NF], all_flat[NF];
        double pf[NF];
        for (int i = 0; i < NF; i++) {
            flat[i] = i == 500 ? 10.0f : 0.0f;
            all_flat[i] = 1;
        }
        expected_probs(flat, all_flat, NF, 1.0, pf);
        double c = pf[500];
        memset(keep_flat, 0, sizeof keep_flat);
        keep_flat[500] = 1;
        for (int i = 0; i < NF && c < 0.99; i++)
            if (i != 500) {
                keep_flat[i] = 1;
                c += pf[i];
            }
        bonsai_sampler_params q = plain(1.0f);
        q.top_p = 0.99f;
        /* each draw sorts ~760 candidates: fewer draws keep the test quick
         * under qemu; the excluded-token check is what matters here */
        check_draws_n("top-p 0.99 with the mass 10 below the best", &q, flat, keep_flat, NF, 4000);
    }

    /* all together, at temperature 0.7: top-k 10 then top-p 0.9 (on the
     * softmax of the ten) then min-p 0.05, then temperature */
    p = plain(0.7f);
    p.top_k = 10;
    p.top_p = 0.9f;
    p.min_p = 0.05f;
    int ten[N];
    double prob10[N];
    memset(ten, 0, sizeof ten);
    for (int i = 0; i < 10; i++)
        ten[order[i]] = 1;
    expected_probs(l, ten, N, 1.0, prob10);
    memset(keep, 0, sizeof keep);
    cum = 0;
    for (int i = 0; i < 10 && cum < 0.9; i++) {
        keep[order[i]] = prob10[order[i]] >= 0.05 * prob10[order[0]];
        cum += prob10[order[i]];
    }
    check_draws("top-k 10, top-p 0.9, min-p 0.05, temperature 0.7", &p, l, keep, N);
}

static void test_repeat_penalty(void)
{
    enum { N = 10 };
    float l[N] = {0.5f, -1.0f, 0.2f, 2.0f, 0.1f, 1.9f, -0.5f, 0.0f, 0.3f, 1.0f};
    bonsai_sampler_params p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    bonsai_sampler *s = NULL;
    bonsai_sampler_create(&p, N, &s);
    int32_t tok;
    bonsai_sampler_sample(s, l, N, &tok);
    CHECK(tok == 3, "no history: argmax 3, got %d", (int)tok);
    bonsai_sampler_accept(s, 3);
    bonsai_sampler_accept(s, 3); /* a repeat counts once: 2.0 / 1.5 = 1.33 < 1.9 */
    bonsai_sampler_sample(s, l, N, &tok);
    CHECK(tok == 5, "3 penalised to 1.33: argmax 5, got %d", (int)tok);
    bonsai_sampler_accept(s, 5); /* 1.9 / 1.5 = 1.27 < 1.33 */
    bonsai_sampler_sample(s, l, N, &tok);
    CHECK(tok == 3, "3 and 5 penalised: 3 (1.33) beats 5 (1.27), got %d", (int)tok);
    bonsai_sampler_accept(s, 9); /* history is now 3, 5, 9: 9 -> 0.67 */
    bonsai_sampler_accept(s, 0); /* window 3: 3 drops out -> 2.0 again */
    bonsai_sampler_sample(s, l, N, &tok);
    CHECK(tok == 3, "3 left the window of 3: argmax 3, got %d", (int)tok);
    bonsai_sampler_free(s);

    /* negative logits are multiplied: 1 of {-1.0 -> -2.0} loses to 6 (-0.5) */
    float neg[3] = {-3.0f, -1.0f, -1.8f};
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 8;
    bonsai_sampler_create(&p, 3, &s);
    bonsai_sampler_accept(s, 1);
    bonsai_sampler_sample(s, neg, 3, &tok);
    CHECK(tok == 2, "-1.0 x 2 = -2.0 < -1.8: got %d", (int)tok);
    bonsai_sampler_free(s);

    /* with temperature, the penalised token's frequency follows softmax */
    float eq[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    float pen[4] = {1.0f / 1.3f, 1.0f, 1.0f, 1.0f};
    int keep[4] = {1, 1, 1, 1};
    p = plain(1.0f);
    p.repeat_penalty = 1.3f;
    bonsai_sampler_create(&p, 4, &s);
    bonsai_sampler_accept(s, 0);
    double want[4];
    expected_probs(pen, keep, 4, 1.0, want);
    size_t count0 = 0;
    for (int d = 0; d < DRAWS; d++) {
        bonsai_sampler_sample(s, eq, 4, &tok);
        count0 += tok == 0;
    }
    double f = (double)count0 / DRAWS, sigma = sqrt(want[0] * (1 - want[0]) / DRAWS);
    CHECK(fabs(f - want[0]) <= 5 * sigma, "penalised token frequency %.4f, expected %.4f", f,
          want[0]);
    bonsai_sampler_free(s);
}

static void test_seed(void)
{
    enum { N = 1000, LEN = 64 };
    float *l = malloc(N * sizeof *l);
    random_logits(l, N, 0.5f);
    bonsai_sampler_params p = plain(1.0f);
    bonsai_sampler *a = NULL, *b = NULL, *c = NULL;
    bonsai_sampler_create(&p, N, &a);
    bonsai_sampler_create(&p, N, &b);
    p.seed ^= 0x5555;
    bonsai_sampler_create(&p, N, &c);
    int32_t sa[LEN], sb[LEN], sc[LEN], sr[LEN];
    for (int i = 0; i < LEN; i++) {
        bonsai_sampler_sample(a, l, N, &sa[i]);
        bonsai_sampler_sample(b, l, N, &sb[i]);
        bonsai_sampler_sample(c, l, N, &sc[i]);
    }
    bonsai_sampler_reset(a);
    for (int i = 0; i < LEN; i++)
        bonsai_sampler_sample(a, l, N, &sr[i]);
    CHECK(memcmp(sa, sb, sizeof sa) == 0, "same seed, same sequence");
    CHECK(memcmp(sa, sr, sizeof sa) == 0, "reset replays the sequence");
    CHECK(memcmp(sa, sc, sizeof sa) != 0, "another seed, another sequence");
    bonsai_sampler_free(a);
    bonsai_sampler_free(b);
    bonsai_sampler_free(c);
    free(l);
}

static void test_errors(void)
{
    bonsai_sampler_params p = bonsai_sampler_default_params();
    bonsai_sampler *s = NULL;
    float l[4] = {0, 1, 2, 3};
    int32_t tok;
    CHECK(bonsai_sampler_create(&p, 4, NULL) == BONSAI_ERR_NULL_ARG, "create: out NULL");
    CHECK(bonsai_sampler_create(&p, 0, &s) == BONSAI_ERR_INVALID_ARG && !s, "create: n_vocab 0");
    const struct {
        const char *name;
        float temp, top_p, min_p, pen;
        int32_t last_n;
    } bad[] = {
        {"temperature NaN", NAN, 1, 0, 1, 0},  {"top_p < 0", 1, -0.1f, 0, 1, 0},
        {"min_p > 1", 1, 1, 1.5f, 1, 0},       {"repeat_penalty 0", 1, 1, 0, 0, 0},
        {"repeat_last_n < 0", 1, 1, 0, 1, -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bonsai_sampler_params q = p;
        q.temperature = bad[i].temp;
        q.top_p = bad[i].top_p;
        q.min_p = bad[i].min_p;
        q.repeat_penalty = bad[i].pen;
        q.repeat_last_n = bad[i].last_n;
        s = NULL;
        CHECK(bonsai_sampler_create(&q, 4, &s) == BONSAI_ERR_INVALID_ARG && !s, "create: %s",
              bad[i].name);
    }
    bonsai_sampler_create(&p, 4, &s);
    CHECK(bonsai_sampler_sample(s, NULL, 4, &tok) == BONSAI_ERR_NULL_ARG, "sample: logits NULL");
    CHECK(bonsai_sampler_sample(s, l, 4, NULL) == BONSAI_ERR_NULL_ARG, "sample: token NULL");
    CHECK(bonsai_sampler_sample(NULL, l, 4, &tok) == BONSAI_ERR_NULL_ARG, "sample: sampler NULL");
    CHECK(bonsai_sampler_sample(s, l, 3, &tok) == BONSAI_ERR_INVALID_ARG, "sample: n_vocab 3 != 4");
    CHECK(bonsai_sampler_accept(s, 4) == BONSAI_ERR_INVALID_ARG, "accept: token 4 of 4");
    CHECK(bonsai_sampler_accept(s, -1) == BONSAI_ERR_INVALID_ARG, "accept: token -1");
    CHECK(bonsai_sampler_accept(NULL, 0) == BONSAI_ERR_NULL_ARG, "accept: sampler NULL");
    bonsai_sampler_free(s);
    bonsai_sampler_free(NULL);
    bonsai_sampler_reset(NULL);
}

int main(void)
{
    harness_init();
    test_greedy();
    test_temperature();
    test_filters();
    test_repeat_penalty();
    test_seed();
    test_errors();
    return harness_finish();
}
