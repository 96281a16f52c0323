// Many sequences at once (spec "Many sequences at once"): one decode step of N sessions as one
// batched call, bit-identical to N separate decode_on_device calls in order.
//
// How: each session runs its own decode step against a recorder (a device decorator that keeps
// the ops instead of running them), so the method's decode logic exists once. Then the recorded
// ops run level by level, the j-th op of every session together, as Device::*_batch calls (one
// dispatch per kernel on the GPU backends when the sessions share a cache pool). Sessions touch
// disjoint memory, so reordering across sessions changes nothing; within a session the order is
// kept. A failure anywhere rewinds every session to where it started: a decode step writes only
// where the committed state does not look (session.h, Mark), so no cache changes.
#pragma once

#include <vector>

#include "method/session.h"

namespace tca::detail::method {

class BatchDecode {
public:
    // q[i], k[i], v[i], o[i]: session i's one-token tensors, as decode_on_device takes them.
    // Sessions must be distinct and share one layer shape and K/V dtype.
    static void run(Device& dev, const std::vector<AttentionSession*>& sessions, const std::vector<Tensor>& q,
                    const std::vector<Tensor>& k, const std::vector<Tensor>& v, const std::vector<Tensor>& o);
};

}  // namespace tca::detail::method
