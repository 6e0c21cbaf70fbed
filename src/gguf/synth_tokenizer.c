/* The synthetic model's tokenizer: a small but consistent byte-level BPE
 * vocabulary in the shape llama.cpp expects for Qwen3 (tokenizer.ggml.model
 * "gpt2", pre "qwen2").
 *
 *   ids 0..255            one token per byte, in GPT-2's byte-to-unicode
 *                         spelling (space -> "Ġ", newline -> "Ċ"), in byte order
 *   ids 256..S-1          one token per merge, each merge joining two earlier
 *                         tokens: "Ġ"+letter, letter pairs, "Ġ"+pair, letter
 *                         triples, "Ġ"+triple, letter quadruples (in that order)
 *   ids S, S+1, S+2       <|endoftext|> (bos, pad), <|im_start|>, <|im_end|>
 *                         (eos): control tokens
 *   ids S+3..n_vocab-1    "[PAD<id>]", unused
 * S = 151643 when n_vocab >= 151936 (Qwen3's ids), else n_vocab - 3.
 * Every token is reachable from its merges, and tokenizer.ggml.merges lists
 * exactly the merges, by rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/synth_internal.h"

#define SLOT 24u /* bytes per token / merge string, NUL included */
#define QWEN_SPECIAL_BASE 151643u
#define QWEN_VOCAB 151936u

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_UNUSED = 5 };

/* GPT-2's printable spelling of byte b, UTF-8 encoded into out (NUL ended). */
static void byte_token(unsigned b, char *out)
{
    unsigned cp;
    int printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    if (printable) {
        cp = b;
    } else {
        /* the n-th non-printable byte maps to 256 + n */
        unsigned n = 0;
        for (unsigned c = 0; c < b; c++)
            n += !((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = '\0';
    }
}

/* Merge number m as its two halves (letters a..z; "Ġ" is the space). */
static void merge_at(uint32_t m, char *left, char *right)
{
    static const char sp[] = "\xc4\xa0";
    char w[5] = {0};
    uint32_t n1 = 26, n2 = 26 * 26, n3 = 26 * 26 * 26;
    if (m < n1) { /* "Ġ" + c */
        strcpy(left, sp);
        sprintf(right, "%c", 'a' + m);
        return;
    }
    m -= n1;
    if (m < n2) { /* c1 + c2 */
        sprintf(left, "%c", 'a' + m / 26);
        sprintf(right, "%c", 'a' + m % 26);
        return;
    }
    m -= n2;
    if (m < n2) { /* "Ġc1" + c2 */
        sprintf(left, "%s%c", sp, 'a' + m / 26);
        sprintf(right, "%c", 'a' + m % 26);
        return;
    }
    m -= n2;
    int space = 0, len = 3;
    if (m >= n3) {
        m -= n3;
        space = 1;
    }
    if (m >= n3) {
        m -= n3;
        space = 0;
        len = 4;
    }
    for (int i = len - 1; i >= 0; i--) {
        w[i] = (char)('a' + m % 26);
        m /= 26;
    }
    sprintf(left, "%s%.*s", space ? sp : "", len - 1, w);
    sprintf(right, "%c", w[len - 1]);
}

bonsai_status synth_add_tokenizer(bonsai_gguf_writer *w, uint32_t n_vocab)
{
    if (n_vocab < 259)
        return bonsai_fail(BONSAI_ERR_INVALID_ARG,
                           "synthetic tokenizer: vocab %u is below 259 (256 bytes + 3 specials)",
                           n_vocab);
    uint32_t special = n_vocab >= QWEN_VOCAB ? QWEN_SPECIAL_BASE : n_vocab - 3;
    uint32_t n_merges = special - 256;
    char *pool = malloc((size_t)(n_vocab + n_merges) * SLOT);
    const char **tokens = malloc((size_t)n_vocab * sizeof *tokens);
    const char **merges = malloc((size_t)(n_merges ? n_merges : 1) * sizeof *merges);
    int32_t *types = malloc((size_t)n_vocab * sizeof *types);
    if (!pool || !tokens || !merges || !types) {
        free(pool);
        free(tokens);
        free(merges);
        free(types);
        return bonsai_fail(BONSAI_ERR_OUT_OF_MEMORY,
                           "synthetic tokenizer: no memory for %u tokens", n_vocab);
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        char *t = pool + (size_t)i * SLOT;
        tokens[i] = t;
        types[i] = TOKEN_NORMAL;
        if (i < 256) {
            byte_token(i, t);
        } else if (i < special) {
            char *m = pool + (size_t)(n_vocab + i - 256) * SLOT, left[12], right[4];
            merge_at(i - 256, left, right);
            snprintf(t, SLOT, "%s%s", left, right);
            snprintf(m, SLOT, "%s %s", left, right);
            merges[i - 256] = m;
        } else if (i < special + 3) {
            static const char *const names[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
            strcpy(t, names[i - special]);
            types[i] = TOKEN_CONTROL;
        } else {
            snprintf(t, SLOT, "[PAD%u]", i);
            types[i] = TOKEN_UNUSED;
        }
    }
    bonsai_status s = bonsai_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen2");
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_array_str(w, "tokenizer.ggml.tokens", n_vocab, tokens);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_array(w, "tokenizer.ggml.token_type", BONSAI_GGUF_INT32,
                                         n_vocab, types);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_array_str(w, "tokenizer.ggml.merges", n_merges, merges);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", special);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", special + 2);
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", special);
    uint8_t no = 0;
    if (s == BONSAI_OK)
        s = bonsai_gguf_writer_add_scalar(w, "tokenizer.ggml.add_bos_token", BONSAI_GGUF_BOOL,
                                          &no);
    free(pool);
    free(tokens);
    free(merges);
    free(types);
    return s;
}
