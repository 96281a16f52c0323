// Batched decode steps (batch.h).
#include "method/batch.h"

#include <algorithm>
#include <string>
#include <variant>

#include "device/forwarding_device.h"

namespace tca::detail::method {

namespace {

using RecordedOp = std::variant<GatherArgs, DecodeArgs, SelectArgs>;

// Keeps a session's ops in order; everything that is not an op goes to the device (storage and
// read-backs of committed state, e.g. a traced step's |G|). Ops a decode step never makes are
// refused, so a new one cannot silently run out of order.
class Recorder final : public ForwardingDevice {
public:
    explicit Recorder(Device& dev) : ForwardingDevice(dev) {}
    std::vector<RecordedOp>* ops = nullptr;

    void gather(const GatherArgs& a) override { ops->push_back(a); }
    void decode(const DecodeArgs& a) override { ops->push_back(a); }
    void select(const SelectArgs& a) override { ops->push_back(a); }

    void update(const BufView&, const void*, size_t) override { refuse("update"); }
    void write(const BufView&, const void*, size_t) override { refuse("write"); }
    void fill_zero(const BufView&, size_t) override { refuse("fill_zero"); }
    void prefill(const PrefillArgs&) override { refuse("prefill"); }
    void score(const ScoreArgs&) override { refuse("score"); }
    void metric(const MetricArgs&) override { refuse("metric"); }
    void rank(const RankArgs&) override { refuse("rank"); }
    void colsum(const ColsumArgs&) override { refuse("colsum"); }

private:
    [[noreturn]] static void refuse(const char* what) {
        throw Error(TCA_ERROR_INTERNAL, std::string("batched decode: a decode step made a ") + what +
                                            ", which the batch does not record");
    }
};

}  // namespace

void BatchDecode::run(Device& dev, const std::vector<AttentionSession*>& s, const std::vector<Tensor>& q,
                      const std::vector<Tensor>& k, const std::vector<Tensor>& v, const std::vector<Tensor>& o) {
    const size_t n = s.size();
    require(n >= 1 && q.size() == n && k.size() == n && v.size() == n && o.size() == n, TCA_ERROR_INTERNAL,
            "batched decode: one q, k, v and o per session");
    std::vector<AttentionSession::Mark> marks;
    marks.reserve(n);
    for (AttentionSession* x : s) marks.push_back(x->mark());
    auto rewind_all = [&](size_t upto) noexcept {
        for (size_t i = 0; i < upto; ++i) s[i]->rewind(marks[i]);
    };
    Recorder rec(dev);
    std::vector<std::vector<RecordedOp>> ops(n);
    size_t done = 0;
    try {
        for (; done < n; ++done) {
            rec.ops = &ops[done];
            s[done]->ops_ = &rec;
            try {
                s[done]->decode_on_device(q[done], k[done], v[done], o[done]);
            } catch (...) {
                s[done]->ops_ = nullptr;
                throw;
            }
            s[done]->ops_ = nullptr;
        }
        // Level j: the j-th op of every session, one batched call per op kind.
        size_t levels = 0;
        for (const auto& l : ops) levels = std::max(levels, l.size());
        for (size_t j = 0; j < levels; ++j) {
            std::vector<GatherArgs> g;
            std::vector<DecodeArgs> d;
            std::vector<SelectArgs> sel;
            for (const auto& l : ops) {
                if (j >= l.size()) continue;
                if (auto* x = std::get_if<GatherArgs>(&l[j])) g.push_back(*x);
                else if (auto* y = std::get_if<DecodeArgs>(&l[j])) d.push_back(*y);
                else sel.push_back(std::get<SelectArgs>(l[j]));
            }
            if (!g.empty()) dev.gather_batch(g);
            if (!d.empty()) dev.decode_batch(d);
            if (!sel.empty()) dev.select_batch(sel);
        }
    } catch (...) {
        rewind_all(std::min(done + 1, n));
        throw;
    }
}

}  // namespace tca::detail::method
