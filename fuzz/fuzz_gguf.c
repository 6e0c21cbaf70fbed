/* libFuzzer target for the GGUF reader: every input is opened from memory
 * (libFuzzer hands an exact-size heap copy, so AddressSanitizer sees any
 * overread) under one of the four id-42 options, and on success every
 * metadata value and both ends of every tensor's data are touched.
 * Build and run: `make fuzz` (clang, -fsanitize=fuzzer,address). */
#include <stddef.h>
#include <stdint.h>

#include "bonsai/gguf.h"

static void touch_metadata(const bonsai_gguf *g)
{
    volatile unsigned sink = 0;
    for (size_t i = 0; i < bonsai_gguf_n_kv(g); i++) {
        const char *key = bonsai_gguf_kv_key(g, i), *s;
        size_t len;
        uint64_t u, n;
        float f;
        int b;
        bonsai_gguf_type et;
        const void *data;
        bonsai_gguf_get_u64(g, key, &u);
        bonsai_gguf_get_f32(g, key, &f);
        bonsai_gguf_get_bool(g, key, &b);
        if (bonsai_gguf_get_str(g, key, &s, &len) == BONSAI_OK)
            for (size_t j = 0; j < len; j++)
                sink += (unsigned char)s[j];
        if (bonsai_gguf_get_array(g, key, &et, &n, &data) == BONSAI_OK &&
            et == BONSAI_GGUF_STRING)
            for (uint64_t j = 0; j < n; j++)
                if (bonsai_gguf_get_array_str(g, key, j, &s, &len) == BONSAI_OK && len)
                    sink += (unsigned char)s[0] + (unsigned char)s[len - 1];
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bonsai_gguf_params p = bonsai_gguf_default_params();
    p.q2_variant = (bonsai_q2_variant)(size % 4);
    bonsai_gguf *g = NULL;
    if (bonsai_gguf_open_memory(data, size, &p, &g) != BONSAI_OK)
        return 0;
    touch_metadata(g);
    volatile unsigned sink = 0;
    for (size_t i = 0; i < bonsai_gguf_n_tensors(g); i++) {
        const bonsai_gguf_tensor *t = bonsai_gguf_tensor_at(g, i);
        const unsigned char *d = t->data;
        sink += d[0] + d[t->bytes - 1] + (unsigned char)t->name[0];
        (void)bonsai_gguf_find_tensor(g, t->name);
    }
    (void)sink;
    bonsai_gguf_close(g);
    return 0;
}
