/* Packing a loaded model's matrices for the decode kernel
 * (bonsai_matrix_pack): q8 mode only (the packed kernels are q8 one-token
 * kernels), every matrix a decode step reads, once. */
#include "core/error.h"
#include "model/model_internal.h"

/* Slots per layer in decode_matrix: Q (or the fused QKV), K, V, O, gate,
 * up, down. */
#define PER_LAYER 7

/* Matrix i of the ones a decode step reads (NULL for an empty slot): Q, K
 * and V as their fused view when there is one, else one by one. */
static bonsai_matrix *decode_matrix(bonsai_model *m, size_t i)
{
    if (i == (size_t)m->hp.n_layers * PER_LAYER)
        return &m->output;
    bonsai_layer *L = &m->layers[i / PER_LAYER];
    const int fused = L->qkv.rows != 0;
    bonsai_matrix *const list[PER_LAYER] = {fused ? &L->qkv : &L->wq, fused ? NULL : &L->wk,
                                            fused ? NULL : &L->wv, &L->wo, &L->gate, &L->up,
                                            &L->down};
    return list[i % PER_LAYER];
}

static size_t n_decode_matrices(const bonsai_model *m)
{
    return (size_t)m->hp.n_layers * PER_LAYER + 1;
}

bonsai_status bonsai_model_pack_weights(bonsai_model *m)
{
    if (!m->params.pack_weights || m->params.act_mode != BONSAI_ACT_Q8)
        return BONSAI_OK;
    const size_t n = n_decode_matrices(m);
    for (size_t i = 0; i < n; i++) {
        bonsai_matrix *w = decode_matrix(m, i);
        bonsai_status s = w ? bonsai_matrix_pack(m->ctx, w) : BONSAI_OK;
        if (s != BONSAI_OK)
            return bonsai_fail(s, "model: packing weights for decode: %s", bonsai_last_error());
    }
    return BONSAI_OK;
}

void bonsai_model_unpack_weights(bonsai_model *m)
{
    if (!m->layers)
        return;
    const size_t n = n_decode_matrices(m);
    for (size_t i = 0; i < n; i++)
        bonsai_matrix_unpack(decode_matrix(m, i));
}

uint64_t bonsai_model_packed_bytes(const bonsai_model *m)
{
    uint64_t bytes = 0;
    if (m->layers)
        for (size_t i = 0; i < n_decode_matrices(m); i++) {
            const bonsai_matrix *w = decode_matrix((bonsai_model *)m, i);
            bytes += w ? w->packed_bytes : 0;
        }
    return bytes;
}
