#version 450
// The example runtime's own "model": one layer's Q, K and V for n tokens at positions pos0..,
// written [head][token][column] with a head stride of cap * d floats. Each value is a hash of
// (layer, position, head, column) in [-1, 1) plus half of the previous layer's attention output
// for that token (query head h for Q, the first query head of a KV head's group for K and V), so
// each layer depends on the one before it, as in a real stack. use_prev = 0 for layer 0.
// Global id: x = token * d + column, y = head: 0..hq-1 Q, then hkv K heads, then hkv V heads.
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Prev { float prev[]; };
layout(std430, binding = 1) writeonly buffer Q { float q[]; };
layout(std430, binding = 2) writeonly buffer K { float k[]; };
layout(std430, binding = 3) writeonly buffer V { float v[]; };
layout(push_constant) uniform Params {
    uint layer, pos0, n, cap, hq, hkv, d, use_prev;
} pc;

float noise(uint layer, uint pos, uint head, uint col) {
    uint x = layer * 0x9E3779B1u ^ pos * 0x85EBCA77u ^ head * 0xC2B2AE3Du ^ col * 0x27D4EB2Fu;
    x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
    return float(x >> 8) * (2.0 / 16777216.0) - 1.0;
}

void main() {
    const uint e = gl_GlobalInvocationID.x, y = gl_GlobalInvocationID.y;
    if (e >= pc.n * pc.d || y >= pc.hq + 2u * pc.hkv) return;
    const uint t = e / pc.d, c = e % pc.d;
    const uint part = y < pc.hq ? 0u : (y < pc.hq + pc.hkv ? 1u : 2u);
    const uint h = part == 0u ? y : (part == 1u ? y - pc.hq : y - pc.hq - pc.hkv);
    const uint src = part == 0u ? h : h * (pc.hq / pc.hkv);
    float x = noise(pc.layer, pc.pos0 + t, y, c);
    if (pc.use_prev != 0u) x += 0.5 * prev[(src * pc.cap + t) * pc.d + c];
    const uint at = (h * pc.cap + t) * pc.d + c;
    if (part == 0u) q[at] = x;
    else if (part == 1u) k[at] = x;
    else v[at] = x;
}
