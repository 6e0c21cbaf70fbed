/* Name indexes of keys and tensors: sorted for O(log n) lookup, which also
 * finds duplicates in O(n log n) however many entries a file claims. */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_internal.h"

static int cmp_name_index(const void *a, const void *b)
{
    const gguf_name_index *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x->index > y->index) - (x->index < y->index);
}

int gguf_index_sort(gguf_name_index *ix, size_t n, size_t *dup_first, size_t *dup_second)
{
    if (n > 1)
        qsort(ix, n, sizeof *ix, cmp_name_index);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ix[i - 1].name, ix[i].name) == 0) {
            *dup_first = ix[i - 1].index;
            *dup_second = ix[i].index;
            return 1;
        }
    }
    return 0;
}

long gguf_index_find(const gguf_name_index *ix, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(ix[mid].name, name);
        if (r == 0)
            return (long)ix[mid].index;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}
