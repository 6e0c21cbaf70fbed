/* Buffers that grow with what the parser has actually read: arrays of
 * entries and a string pool. Sizes are overflow-checked. */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_internal.h"

int gguf_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return 0;
        n *= 2;
    }
    if (n > SIZE_MAX / elem)
        return 0;
    void *q = realloc(*p, n * elem);
    if (!q)
        return 0;
    memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
    *p = q;
    *cap = n;
    return 1;
}

int gguf_pool_add(gguf_pool *pool, const uint8_t *s, size_t n, size_t *off)
{
    if (n > SIZE_MAX - 1 - pool->len)
        return 0;
    void *p = pool->p;
    if (!gguf_grow(&p, &pool->cap, pool->len + n + 1, 1))
        return 0;
    pool->p = p;
    memcpy(pool->p + pool->len, s, n);
    pool->p[pool->len + n] = '\0';
    *off = pool->len;
    pool->len += n + 1;
    return 1;
}
