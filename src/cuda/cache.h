/* Internal: the on-disk cache of NVRTC-compiled kernels (no CUDA needed).
 *
 * One file per key, <dir>/kernels-<key as 16 hex digits>.cubin:
 *   offset 0  8 bytes  magic "BNSCUBIN"
 *          8  u32      format version (1)
 *         12  u32      header bytes (40)
 *         16  u64      key (FNV-1a 64 of source, options, NVRTC version, arch)
 *         24  u64      payload length
 *         32  u64      payload checksum (FNV-1a 64)
 *         40  payload
 * all little-endian. Files are written to a temporary name in the same
 * directory and renamed into place, so a reader sees a whole file or none.
 * A reader trusts nothing: a short file, wrong magic, version, key, length
 * or checksum is refused with BONSAI_ERR_FORMAT and a message saying which. */
#ifndef BONSAI_CUDA_CACHE_H
#define BONSAI_CUDA_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "bonsai/status.h"

#define BONSAI_CACHE_MAGIC "BNSCUBIN"
#define BONSAI_CACHE_VERSION 1u
#define BONSAI_CACHE_HEADER_BYTES 40u
#define BONSAI_CACHE_MAX_PAYLOAD (256u << 20)
#define BONSAI_HASH64_INIT 0xcbf29ce484222325ull

/* FNV-1a 64: h = BONSAI_HASH64_INIT to start, then chain. */
uint64_t bonsai_hash64(uint64_t h, const void *data, size_t n);

/* The cache directory: override if non-NULL and non-empty, else
 * $BONSAI_CACHE_DIR, else $XDG_CACHE_HOME/bonsai, else $HOME/.cache/bonsai.
 * INVALID_ARG if none can be formed or it does not fit in cap. */
bonsai_status bonsai_cache_dir(const char *override, char *out, size_t cap);
/* <dir>/kernels-<key>.cubin; BUFFER_TOO_SMALL if it does not fit. */
bonsai_status bonsai_cache_path(const char *dir, uint64_t key, char *out, size_t cap);

/* Creates dir (and parents), writes the file atomically. IO with the reason
 * on failure (nothing is left behind). */
bonsai_status bonsai_cache_write(const char *dir, uint64_t key, const void *data, size_t n);
/* Reads and validates the file for key in dir. NOT_FOUND if there is none,
 * FORMAT if it is truncated, corrupt or foreign, IO if it cannot be read.
 * On success *data (free with free()) holds *n bytes. */
bonsai_status bonsai_cache_read(const char *dir, uint64_t key, void **data, size_t *n);

#endif
