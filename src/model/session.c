/* Public prefill / decode: argument checks, the context-length bound, and
 * the split of long prompts into passes of at most BONSAI_MODEL_MAX_CHUNK
 * tokens. */
#include <inttypes.h>

#include "core/error.h"
#include "model/model_internal.h"

bonsai_status bonsai_session_prefill(bonsai_session *s, const int32_t *tokens, size_t n_tokens,
                                     float *logits, size_t logits_len)
{
    if (!s || !tokens)
        return bonsai_fail(BONSAI_ERR_NULL_ARG, "session: %s is NULL", s ? "tokens" : "session");
    const bonsai_hparams *hp = &s->model->hp;
    if (n_tokens == 0)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG, "session: no tokens to run");
    if (logits && logits_len < hp->n_vocab)
        return bonsai_fail(BONSAI_ERR_BUFFER_TOO_SMALL,
                           "session: logits buffer holds %zu floats, n_vocab = %" PRIu32
                           " needed", logits_len, hp->n_vocab);
    if (n_tokens > (size_t)(s->n_ctx - s->n_past))
        return bonsai_fail(BONSAI_ERR_CONTEXT_FULL,
                           "session: context full: %" PRIu32 " positions used + %zu new > n_ctx = %"
                           PRIu32 " (raise the context length, e.g. -c)",
                           s->n_past, n_tokens, s->n_ctx);
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                               "session: token %zu is id %" PRId32 ", outside [0, %" PRIu32 ")",
                               i, tokens[i], hp->n_vocab);
    for (size_t done = 0; done < n_tokens;) {
        size_t m = n_tokens - done < BONSAI_MODEL_MAX_CHUNK ? n_tokens - done
                                                            : BONSAI_MODEL_MAX_CHUNK;
        int last = done + m == n_tokens;
        bonsai_status st = bonsai_forward(s, tokens + done, m, last ? logits : NULL);
        if (st != BONSAI_OK)
            return st;
        done += m;
    }
    return BONSAI_OK;
}

bonsai_status bonsai_session_decode(bonsai_session *s, int32_t token, float *logits,
                                    size_t logits_len)
{
    return bonsai_session_prefill(s, &token, 1, logits, logits_len);
}
