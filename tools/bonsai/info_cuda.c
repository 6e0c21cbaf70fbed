/* The CUDA lines of `bonsai info`: architectures built into the library,
 * then the device, its architecture, which pipeline level loaded the
 * kernels and how long that took, or "no CUDA device" and why. Opening the
 * device is the real test, so this loads the kernels like any user would. */
#include <stdio.h>

#include "bonsai/bonsai.h"
#include "commands.h"

void info_cuda_print(void)
{
    printf("cuda archs built: %s\n", bonsai_cuda_archs_built());
    bonsai_cuda *cu = NULL;
    bonsai_status s = bonsai_cuda_open(NULL, &cu);
    if (s != BONSAI_OK) {
        if (s == BONSAI_ERR_NO_CUDA_DEVICE) // the message starts "no CUDA device: "
            printf("cuda device: %s\n", bonsai_last_error());
        else
            printf("cuda device: error %s: %s\n", bonsai_status_name(s), bonsai_last_error());
        return;
    }
    bonsai_cuda_info info;
    bonsai_cuda_get_info(cu, &info);
    printf("cuda device: %s (sm_%d%d, %d SMs, %.1f GiB, L2 %zu MiB, driver %d.%d)\n", info.name,
           info.cc_major, info.cc_minor, info.sm_count, info.total_mem / (1024.0 * 1024 * 1024),
           info.l2_bytes >> 20, info.driver_version / 1000, info.driver_version % 1000 / 10);
    printf("cuda kernels: %s, loaded in %.1f ms\n", bonsai_cuda_source_name(info.source),
           info.load_ms);
    if (info.cache_path[0])
        printf("cuda kernel cache: %s\n", info.cache_path);
    if (info.cache_note[0])
        printf("cuda kernel cache note: %s\n", info.cache_note);
    bonsai_cuda_close(cu);
}
