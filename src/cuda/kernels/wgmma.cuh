/* Helpers shared by the sm_90a wgmma GEMMs (gemm90.cu: int8, gemm90h.cu:
 * fp16): 16-byte cp.async copies into shared memory and the shared-memory
 * matrix descriptor of a K-major, 128-byte-swizzled operand. */
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

/* wgmma shared-memory descriptor: K-major, 128-byte swizzle, 8-row atoms
 * 1024 bytes apart (addr 1024-aligned for the atom's first row). */
__device__ __forceinline__ unsigned long long g90_desc(u32 addr)
{
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | (1ull << 16) |
           ((unsigned long long)(1024 >> 4) << 32) | (1ull << 62);
}

#endif
