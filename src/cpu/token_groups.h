/* Internal: the loop every tier's row-major mm kernels share. A kernel's
 * row function takes one weight row against nt tokens with nt a
 * compile-time constant at each call site, so that its accumulators stay in
 * registers; this loop makes the calls. */
#ifndef BONSAI_CPU_TOKEN_GROUPS_H
#define BONSAI_CPU_TOKEN_GROUPS_H
#include <stddef.h>
#include <stdint.h>

/* For rows [r0, r1) of a matrix whose rows are row_bytes apart from w, and
 * tokens [0, m): ROW(row, t, nt, yt) with row the row's first byte, tokens
 * t .. t + nt - 1 and yt = y + (r - r0) + t * ldy. nt is BIG as long as BIG
 * tokens remain, then 4, then the last 3, 2 or 1 (BIG a multiple of 4). */
#define BONSAI_FOR_ROWS_AND_TOKEN_GROUPS(w, row_bytes, r0, r1, m, y, ldy, BIG, ROW)              \
    for (size_t r_ = (r0); r_ < (r1); r_++) {                                                    \
        const uint8_t *row_ = (const uint8_t *)(w) + r_ * (row_bytes);                           \
        float *yr_ = (y) + (r_ - (r0));                                                          \
        size_t t_ = 0;                                                                           \
        for (; t_ + (BIG) <= (m); t_ += (BIG))                                                   \
            ROW(row_, t_, BIG, yr_ + t_ * (ldy));                                                \
        for (; t_ + 4 <= (m); t_ += 4)                                                           \
            ROW(row_, t_, 4, yr_ + t_ * (ldy));                                                  \
        switch ((m) - t_) {                                                                      \
        case 3: ROW(row_, t_, 3, yr_ + t_ * (ldy)); break;                                       \
        case 2: ROW(row_, t_, 2, yr_ + t_ * (ldy)); break;                                       \
        case 1: ROW(row_, t_, 1, yr_ + t_ * (ldy)); break;                                       \
        default: break;                                                                          \
        }                                                                                        \
    }

#endif
