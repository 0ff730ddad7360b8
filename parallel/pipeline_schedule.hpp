// Pipeline schedules as data (specs/models.md §5): for each pipeline rank, the ordered list of
// operations it runs in one training step. A model is cut into C = p * v chunks (contiguous layer
// ranges); rank r holds chunks r, r + p, r + 2p, ... (v = 1 except for interleaved 1F1B). Chunk c's
// forward reads chunk c-1's output activation; its backward reads chunk c+1's input gradient.
//
// Communication ops are inserted by `make_schedule` next to the compute ops that produce or need
// them: a send right after the compute that made the tensor, a receive right before the compute
// that needs it. Consecutive communication ops form one batch (posted together as isend/irecv,
// then waited on together), which is what lets 1F1B pair "send activation / receive gradient"
// with the neighbour's "send gradient / receive activation".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::parallel {

enum class PipeScheduleKind { GPipe, OneFOneB, Interleaved };

// "gpipe" | "1f1b" | "interleaved" (the recipe key parallel.schedule).
PipeScheduleKind parse_pipe_schedule(const std::string& name);
std::string to_string(PipeScheduleKind k);

enum class PipeOpKind {
  Forward,   // run chunk's forward for micro-batch mb
  Backward,  // run chunk's backward for micro-batch mb
  SendAct,   // send chunk's output activation of mb to the rank holding chunk + 1
  RecvAct,   // receive chunk's input activation of mb from the rank holding chunk - 1
  SendGrad,  // send the gradient w.r.t. chunk's input of mb to the rank holding chunk - 1
  RecvGrad,  // receive the gradient w.r.t. chunk's output of mb from the rank holding chunk + 1
};

struct PipeOp {
  PipeOpKind kind;
  int64_t mb;     // micro-batch, 0..m-1
  int64_t chunk;  // global chunk index, 0..p*v-1 (on rank chunk % p)
  int64_t peer = -1;  // the other pipeline rank for communication ops
  bool is_compute() const { return kind == PipeOpKind::Forward || kind == PipeOpKind::Backward; }
  bool operator==(const PipeOp&) const = default;
};

struct PipeSchedule {
  PipeScheduleKind kind;
  int64_t p = 1;  // pipeline ranks
  int64_t m = 1;  // micro-batches per step
  int64_t v = 1;  // chunks per rank (virtual stages)
  std::vector<std::vector<PipeOp>> ranks;  // ranks[r] = rank r's ops in order
  int64_t num_chunks() const { return p * v; }
  int64_t rank_of_chunk(int64_t c) const { return c % p; }
};

// Builds the schedule; fails when (p, m, v) do not suit the kind (interleaved needs v >= 2 and
// m % p == 0; GPipe and 1F1B need v == 1).
PipeSchedule make_schedule(PipeScheduleKind kind, int64_t p, int64_t m, int64_t v = 1);

// The compute order only (Forward/Backward) of rank r, before communication ops are inserted.
std::vector<PipeOp> compute_order(PipeScheduleKind kind, int64_t p, int64_t m, int64_t v, int64_t r);

// A unique message tag per (kind of message, micro-batch, receiving-side chunk), shared by the
// sender's and the receiver's op, so that messages match regardless of posting order.
int64_t message_tag(const PipeSchedule& s, const PipeOp& op);

// Structural checks (spec invariant 6), independent of timing: every (mb, chunk) is forwarded and
// backwarded exactly once on its own rank, the backward after the forward, every send has exactly
// one matching receive on the right peer. Returns an empty string when all hold, else the first
// violation in words.
std::string check_schedule(const PipeSchedule& s);

// Peak number of micro-batch activations (forwards whose backward has not run yet) held by rank r.
int64_t peak_live_activations(const PipeSchedule& s, int64_t r);

// "F3.1" = forward of mb 3 on chunk 1; "sA3.1>2" = send activation to rank 2; "rG3.1<2" etc.
std::string to_string(const PipeOp& op);
// One line per rank; communication batches in brackets.
std::string format_schedule(const PipeSchedule& s);

}  // namespace strata::parallel
