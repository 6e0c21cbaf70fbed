/* Internal: a streaming GGUF v3 writer.
 *
 * Use: create -> add metadata and declare every tensor (name, ggml type id,
 * shape, byte size) -> write each tensor's bytes in declaration order, in as
 * many pieces as convenient -> finish. The header, metadata and tensor infos
 * are written at the first data write; each tensor is padded to the
 * alignment. Output goes to a temporary file next to path, renamed onto
 * path by finish, so readers never see a half-written file. abort (or any
 * failure followed by abort) removes the temporary file. The writer refuses
 * duplicate keys and tensor names and a data write that does not match the
 * declared sizes. general.alignment is written by the writer itself. */
#ifndef BONSAI_GGUF_WRITER_H
#define BONSAI_GGUF_WRITER_H
#include <stddef.h>
#include <stdint.h>

#include "bonsai/gguf.h"

typedef struct bonsai_gguf_writer bonsai_gguf_writer;

/* alignment: a power of two (0 means 32). */
bonsai_status bonsai_gguf_writer_create(const char *path, uint32_t alignment,
                                        bonsai_gguf_writer **out);
/* Removes the temporary file and frees w. NULL is a no-op. */
void bonsai_gguf_writer_abort(bonsai_gguf_writer *w);
/* Flushes, renames onto path and frees w (also on failure). */
bonsai_status bonsai_gguf_writer_finish(bonsai_gguf_writer *w);

/* Scalars: value points at one value of the type's size (bool: one byte). */
bonsai_status bonsai_gguf_writer_add_scalar(bonsai_gguf_writer *w, const char *key,
                                            bonsai_gguf_type type, const void *value);
bonsai_status bonsai_gguf_writer_add_u32(bonsai_gguf_writer *w, const char *key, uint32_t v);
bonsai_status bonsai_gguf_writer_add_f32(bonsai_gguf_writer *w, const char *key, float v);
bonsai_status bonsai_gguf_writer_add_str(bonsai_gguf_writer *w, const char *key, const char *s);
/* Array of fixed-size elements (count elements of elem_type at data). */
bonsai_status bonsai_gguf_writer_add_array(bonsai_gguf_writer *w, const char *key,
                                           bonsai_gguf_type elem_type, uint64_t count,
                                           const void *data);
/* Array of NUL-terminated strings. */
bonsai_status bonsai_gguf_writer_add_array_str(bonsai_gguf_writer *w, const char *key,
                                               uint64_t count, const char *const *strs);
/* Any value given already encoded as GGUF lays it out after the type field
 * (e.g. a nested array: elem type, count, elements). The bytes are copied
 * as they are; the writer does not parse them. */
bonsai_status bonsai_gguf_writer_add_encoded(bonsai_gguf_writer *w, const char *key,
                                             bonsai_gguf_type type, const void *bytes,
                                             size_t n);

/* Declares the next tensor. ne[0] = input features; bytes is its data size. */
bonsai_status bonsai_gguf_writer_add_tensor(bonsai_gguf_writer *w, const char *name,
                                            uint32_t ggml_type, uint32_t n_dims,
                                            const uint64_t *ne, uint64_t bytes);
/* Appends n bytes of tensor data (may span tensors). */
bonsai_status bonsai_gguf_writer_write(bonsai_gguf_writer *w, const void *data, size_t n);

#endif
