/* Helpers shared by the sm_90a wgmma GEMMs (gemm90.cu: int8, gemm90h.cu:
 * fp16): 16-byte cp.async copies into shared memory, bulk copies completing
 * on an mbarrier, and the shared-memory matrix descriptor of a K-major,
 * 128-byte-swizzled operand. */
#ifndef BONSAI_CUDA_WGMMA_CUH
#define BONSAI_CUDA_WGMMA_CUH

#include "layout.cuh"

__device__ __forceinline__ u32 g90_smem_addr(const void *p)
{
    return (u32)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void g90_cp16(u32 dst, const void *src)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src));
}

/* mbarrier at shared address mbar: init to `count` arrivals; this thread's
 * arrival, announcing `bytes` of async copies that will complete on it; a
 * bulk copy of `bytes` (16-byte aligned, a multiple of 16) from global src
 * to shared dst completing on it; both (one arrival, one copy); wait until
 * the phase of the given parity completed. */
__device__ __forceinline__ void g90_mbar_init(u32 mbar, u32 count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(mbar), "r"(count) : "memory");
}

__device__ __forceinline__ void g90_mbar_expect(u32 mbar, u32 bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mbar), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void g90_bulk_copy(u32 dst, const void *src, u32 bytes, u32 mbar)
{
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], "
                 "%2, [%3];" ::"r"(dst), "l"(src), "r"(bytes), "r"(mbar)
                 : "memory");
}

__device__ __forceinline__ void g90_bulk_load(u32 dst, const void *src, u32 bytes, u32 mbar)
{
    g90_mbar_expect(mbar, bytes);
    g90_bulk_copy(dst, src, bytes, mbar);
}

__device__ __forceinline__ void g90_mbar_wait(u32 mbar, u32 parity)
{
    u32 done;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(mbar), "r"(parity) : "memory");
    } while (!done);
}

/* wgmma shared-memory descriptor: K-major, 128-byte swizzle, 8-row atoms
 * 1024 bytes apart (addr 1024-aligned for the atom's first row). */
__device__ __forceinline__ unsigned long long g90_desc(u32 addr)
{
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) |
           ((unsigned long long)(1024 >> 4) << 32) | (1ull << 62);
}

#endif
