// Timeline of back-to-back gemv_b1 launches (PDL) at 24576x4096, from the
// %globaltimer stamps kernels/gemv_b1.cu writes when built with B1_TRACE:
// per launch and block: start (resident), release (after
// griddepcontrol.wait), B fragments staged, units done, rows stored. Random
// weights and activations (timing only). Build from the repository root:
//   nvcc -O2 -std=c++17 -DB1_TRACE -gencode=arch=compute_90a,code=sm_90a \
//        -Isrc/cuda/kernels scripts/gemv-b1-trace.cu -o trace_b1
// Run: ./trace_b1 q1|tq2 hot|cold [pf16 [trigger [depth]]]
#include "gemv_b1.cu"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <cuda_runtime.h>

static double med(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

int main(int argc, char **argv)
{
    const int tq2 = argc > 1 && !strcmp(argv[1], "tq2"), cold = argc > 2 && !strcmp(argv[2], "cold");
    const int pf16 = argc > 3 ? atoi(argv[3]) : 8, trigger = argc > 4 ? atoi(argv[4]) : 0;
    const int depth = argc > 5 ? atoi(argv[5]) : 0;
    const int rows = 24576, k = 4096, nb = k / 128, m_pad = 128, launches = 48;
    const int BB = tq2 ? 32 : 16, row_bytes = nb * BB, ch = tq2 ? 2 : 4;
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    const int grid = prop.multiProcessorCount, groups = rows / 16;
    const int parts = ((nb + 1) / 2 + ch - 1) / ch, max_groups = (groups + grid - 1) / grid;
    const int smem = 16 * 2 * (16 * 128 + 64 * ch) + parts * ch * (tq2 ? 544 : 384) +
                     parts * max_groups * 64;
    const size_t bits_bytes = (size_t)rows * row_bytes, sc_bytes = (size_t)rows * nb * 2;
    const int copies = cold ? (int)((200u << 20) / (bits_bytes + sc_bytes) + 1) : 1;
    std::vector<unsigned char> h(bits_bytes);
    for (auto &b : h)
        b = (unsigned char)rand();
    std::vector<u8 *> bits(copies);
    std::vector<u16 *> scales(copies);
    for (int c = 0; c < copies; c++) {
        cudaMalloc(&bits[c], bits_bytes);
        cudaMalloc(&scales[c], sc_bytes);
        cudaMemcpy(bits[c], h.data(), bits_bytes, cudaMemcpyHostToDevice);
        cudaMemset(scales[c], 0x3c, sc_bytes); // fp16 ~1.06
    }
    u32 *planes;
    float *xd, *y;
    int *xs;
    cudaMalloc(&planes, k);
    cudaMalloc(&xd, nb * m_pad * 4);
    cudaMalloc(&xs, nb * m_pad * 4);
    cudaMalloc(&y, rows * 4);
    cudaMemcpy(planes, h.data(), k, cudaMemcpyHostToDevice);
    cudaMemset(xd, 0, nb * m_pad * 4);
    cudaMemset(xs, 0, nb * m_pad * 4);
    auto f = tq2 ? bonsai_gemv_b1_tq2 : bonsai_gemv_b1_q1;
    cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = 512;
    cfg.dynamicSmemBytes = smem;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const int add = 0, evict_first = 1;
    for (int rep = 0; rep < 3; rep++) { // rep 0: warm-up
        std::vector<unsigned> zero(1024, 0);
        cudaMemcpyToSymbol(b1_seq, zero.data(), 1024 * 4);
        cudaDeviceSynchronize();
        cudaEventRecord(e0);
        for (int i = 0; i < launches; i++)
            cudaLaunchKernelEx(&cfg, f, (const u8 *)bits[i % copies], (const u16 *)scales[i % copies],
                               rows, k, (const u32 *)planes, (const float *)xd, (const int *)xs,
                               m_pad, y, add, pf16, evict_first, trigger, depth);
        cudaEventRecord(e1);
        cudaError_t err = cudaDeviceSynchronize();
        if (err != cudaSuccess) {
            printf("error %s\n", cudaGetErrorString(err));
            return 1;
        }
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (!rep)
            continue;
        static unsigned long long tr[64][1024][5];
        cudaMemcpyFromSymbol(tr, b1_trace, sizeof tr);
        // per launch, us from its release (first block past the wait):
        // first block resident, last released, last staged, last done, last stored
        std::vector<double> st, rl, sg, dn, en, per;
        double prev = 0;
        for (int l = 8; l < launches - 8; l++) {
            unsigned long long s0 = ~0ull, r0 = ~0ull, r1 = 0, g1 = 0, d1 = 0, e1_ = 0;
            for (int b = 0; b < grid; b++) {
                s0 = std::min(s0, tr[l][b][0]);
                r0 = std::min(r0, tr[l][b][1]);
                r1 = std::max(r1, tr[l][b][1]);
                g1 = std::max(g1, tr[l][b][2]);
                d1 = std::max(d1, tr[l][b][3]);
                e1_ = std::max(e1_, tr[l][b][4]);
            }
            const double r = (double)r0;
            st.push_back((s0 - r) * 1e-3);
            rl.push_back((r1 - r) * 1e-3);
            sg.push_back((g1 - r) * 1e-3);
            dn.push_back((d1 - r) * 1e-3);
            en.push_back((e1_ - r) * 1e-3);
            if (prev > 0)
                per.push_back((r - prev) * 1e-3);
            prev = r;
        }
        printf("%s %s pf16=%d trigger=%d depth=%d: %.2f us/launch (events), release period %.2f | from release: "
               "first resident %.2f, last released %.2f, staged %.2f, units done %.2f, stored %.2f\n",
               tq2 ? "tq2" : "q1", cold ? "cold" : "hot", pf16, trigger, depth, ms * 1e3 / launches, med(per),
               med(st), med(rl), med(sg), med(dn), med(en));
    }
    return 0;
}
