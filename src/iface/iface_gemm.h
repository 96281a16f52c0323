// Kernel family "gemm": the compute probe of the roofline (Device::gemm, shaders/gemm.comp).
// Host: src/backends/vulkan/ops_gemm.cpp (OpenCL runs CLBlast instead, when built with it).
#ifndef TCA_IFACE_GEMM_H
#define TCA_IFACE_GEMM_H
#include "iface_common.h"

TCA_PARAMS_BEGIN(GemmParams)
    TCA_U32 a_off; TCA_U32 b_off; TCA_U32 c_off;  // in elements
    TCA_U32 m; TCA_U32 n; TCA_U32 k;
TCA_PARAMS_END(GemmParams)

#define TCA_GEMM_BIND_A 0
#define TCA_GEMM_BIND_B 1
#define TCA_GEMM_BIND_C 2
#define TCA_GEMM_BINDINGS 3

#define TCA_GEMM_SPEC_WG_X 0  // BN / TN
#define TCA_GEMM_SPEC_WG_Y 1  // BM / TM
#define TCA_GEMM_SPEC_BM 2
#define TCA_GEMM_SPEC_BN 3
#define TCA_GEMM_SPEC_BK 4
#define TCA_GEMM_SPEC_TM 5
#define TCA_GEMM_SPEC_TN 6
#define TCA_GEMM_SPEC_STAGE 7
#define TCA_GEMM_SPECS 8

#endif
