/* The C interface of libstrata_spm.so, Strata's SentencePiece plugin (data/spm_plugin.cpp).
 *
 * Debian's libsentencepiece exports its own bundled copy of protobuf (3.14) while Strata links the
 * system libprotobuf (3.21) for checkpoints; loaded side by side in one namespace they interpose
 * each other's symbols and crash at start-up. So the SentencePiece libraries are never linked into
 * Strata binaries: data/spm_runtime.cpp dlopen()s this plugin with RTLD_LOCAL | RTLD_DEEPBIND, which
 * keeps SentencePiece and its protobuf in a scope of their own. Only plain C types cross it. */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_spm strata_spm;

/* Every function that can fail returns 0 on success, else non-zero with *err set to a malloc'ed
 * message (free with strata_spm_free_buf). */
int strata_spm_load(const char* model, size_t n, strata_spm** out, char** err);
void strata_spm_free(strata_spm* sp);
int strata_spm_piece_size(const strata_spm* sp);
/* -1 when the piece is not in the model. */
int strata_spm_find_piece(const strata_spm* sp, const char* piece, size_t n);
int strata_spm_is_control(const strata_spm* sp, int id);
/* *ids is malloc'ed. */
int strata_spm_encode(const strata_spm* sp, const char* text, size_t n, int** ids, size_t* count, char** err);
/* *text is malloc'ed. */
int strata_spm_decode(const strata_spm* sp, const int* ids, size_t count, char** text, size_t* n, char** err);
/* Trains a model from n_args key/value options and the lines next_line yields (it returns 0 when
 * there are no more); *model is malloc'ed. */
typedef int (*strata_spm_next_line)(void* ctx, const char** line, size_t* n);
int strata_spm_train(const char* const* keys, const char* const* values, size_t n_args, strata_spm_next_line next,
                     void* ctx, char** model, size_t* model_n, char** err);
void strata_spm_free_buf(void* p);

#ifdef __cplusplus
}
#endif
