/* bonsai: 1-bit and ternary LLM inference. Umbrella header. */
#ifndef BONSAI_H
#define BONSAI_H
#include "version.h"
#include "status.h"
#include "formats.h"
#include "kernels.h"
#include "gguf.h"
#include "model.h"
#include "cuda.h"
#endif
