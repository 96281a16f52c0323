// Sessions that take the prompt as a sequence of chunks (spec "Chunked prompt (streaming
// prefill)"): prefill_on_device() is called once per chunk (1..max_chunk tokens, positions
// continuing), then decode_on_device() once per token. A chunk after the first decode step, a
// chunk longer than max_chunk or one past the capacity is refused (TCA_ERROR_INVALID_ARGUMENT)
// and changes nothing.
//
//  * TCA: G (compressed, kept) plus the uncompressed tokens from position u on. Query i of a chunk
//    attends G and every j in [u, i]; after the chunk the full blocks of [u, e - w) are compressed
//    with the chunk's last query's probabilities (metric, rank, budgets by rank over those blocks,
//    top-t per block). Decode then follows the spec's decode cache with pending = the uncompressed
//    tokens before the ring.
//  * dense: every token stays; each chunk attends causally to everything before it.
//
// Both run on the existing device ops only, so every backend has them.
#pragma once

#include <memory>
#include <vector>

#include "method/session.h"

namespace tca::detail::method {

// capacity: the most tokens the session will see (prompt + decode steps); max_chunk >= 1.
std::unique_ptr<AttentionSession> make_chunked_tca_session(Device& dev, AttnShape shape, const TcaParams& params,
                                                           std::vector<std::vector<double>> p_star, int capacity,
                                                           int max_chunk, DType kv_dtype = DType::f32);
std::unique_ptr<AttentionSession> make_chunked_dense_session(Device& dev, AttnShape shape, int capacity, int max_chunk,
                                                             DType kv_dtype = DType::f32);

}  // namespace tca::detail::method
