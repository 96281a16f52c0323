// Ops and stages are enums (src/device/device.h): every op has its own name, and each lands in the
// stage of tca_call_stats the method's calls report it under.
#include <set>
#include <string>

#include "device/device.h"
#include "harness.h"

namespace tca::detail::test {
namespace {

const Op kAllOps[] = {Op::attend_dense, Op::attend_sparse, Op::decode, Op::score, Op::metric, Op::sort,
                      Op::select,       Op::gather,        Op::colsum, Op::copy,  Op::gemm};

TEST(OpStages, EveryOpHasItsOwnName) {
    std::set<std::string> names;
    for (Op op : kAllOps) {
        const std::string n = op_name(op);
        EXPECT_NE(n, "?");
        EXPECT_TRUE(names.insert(n).second) << n << " twice";
    }
    EXPECT_EQ(names.size(), std::size(kAllOps));
}

TEST(OpStages, OpsLandInTheirStages) {
    EXPECT_EQ(stage_of(Op::attend_dense), Stage::attend);
    EXPECT_EQ(stage_of(Op::attend_sparse), Stage::attend);
    EXPECT_EQ(stage_of(Op::decode), Stage::attend);
    EXPECT_EQ(stage_of(Op::score), Stage::score);
    EXPECT_EQ(stage_of(Op::metric), Stage::metric);
    EXPECT_EQ(stage_of(Op::sort), Stage::sort);
    EXPECT_EQ(stage_of(Op::select), Stage::select);
    for (Op op : {Op::gather, Op::colsum, Op::copy, Op::gemm}) EXPECT_EQ(stage_of(op), Stage::other) << op_name(op);
    EXPECT_STREQ(stage_name(Stage::attend), "attend");
    EXPECT_STREQ(stage_name(Stage::other), "other");
}

}  // namespace
}  // namespace tca::detail::test
