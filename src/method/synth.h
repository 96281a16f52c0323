// Synthetic attention workloads with the structures real heads show, for tests, the CLI and the
// benchmark. Every generator is deterministic in (kind, shape, seed) on every platform (own RNG,
// no std:: distributions, whose output is implementation-defined).
//
// Logits are q.k / sqrt(d). Strengths that must beat the background of L tokens are set as
// ln(L) + margin, so a kind's attention pattern looks the same at every length.
//
//   sink      the first tokens carry a large component along a "sink" direction every query shares;
//             token 0 gets logit ln(L) + 3, tokens 1..3 a little less. Other keys are noise
//             orthogonal to it, so most of every query's mass sits on the first block.
//   local     RoPE-style: q_i = R(i) a, k_j = R(j) a (+ small noise), rotation frequencies
//             10000^(-2f/d), so q_i.k_j = (P / (d/2)) sum_f cos(w_f (i - j)): peak P = 18 at
//             distance 0, decaying roughly as a power law with distance — recent tokens dominate.
//   uniform   near-zero queries: attention is flat over the causal prefix.
//   bipolar   two regions of L/32 tokens (at L/8 and L/2) share a direction with every query;
//             their tokens hold most mass, spread flat inside each region.
//   retrieval four "needle" keys planted at seeded positions in [L/64, L/4), each along its own
//             direction; every query has a component along all of them, so queries that can see a
//             needle put most of their mass on it.
//   random    q, k ~ N(0, 1): no structure, logits ~ N(0, 1).
//   mix       a different kind per KV head, cycling local, sink, retrieval, local, bipolar, random
//             (local and sink heads are the most common in real models).
// V is N(0, 1) for every kind. Query heads of a GQA group share their KV head's structure with
// independent noise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "method/host_tensor.h"

namespace tca::detail::method {

enum class SynthKind { sink, local, uniform, bipolar, retrieval, random, mix };

// Throws TCA_ERROR_INVALID_ARGUMENT listing the valid names.
SynthKind parse_synth_kind(const std::string& name);
const char* synth_kind_name(SynthKind k);
std::vector<SynthKind> all_synth_kinds();

struct SynthSpec {
    SynthKind kind = SynthKind::random;
    int q_heads = 4, kv_heads = 2, len = 1024, dim = 64;
    uint64_t seed = 1;
};

struct SynthData {
    HostTensor q, k, v;                // q [Hq, L, d], k/v [Hkv, L, d]
    std::vector<SynthKind> head_kinds;  // the kind of every KV head (mix resolves per head)
};

// Throws TCA_ERROR_INVALID_ARGUMENT for a shape synthesize() cannot make.
void validate_synth_spec(const SynthSpec& spec);
// The kind KV head h gets: spec.kind, or for mix its turn in the cycle.
SynthKind synth_head_kind(const SynthSpec& spec, int h);

SynthData synthesize(const SynthSpec& spec);

}  // namespace tca::detail::method
