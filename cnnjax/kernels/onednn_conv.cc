// An NHWC x HWIO convolution (float32, no dilation, one group) and its two
// gradients by oneDNN, as XLA FFI custom calls for the CPU backend, where
// XLA's kernels are slower at the zoo's shapes: cnnjax/models/onednn.py
// builds and registers this file, cpu_kernels.py says where each is used.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum class Pass { kForward, kInputGrad, kKernelGrad };

// The pass, the maps' shapes (NHWC), the kernel's (HWIO), strides and pads.
using Key = std::tuple<Pass, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>,
                       std::vector<int64_t>, std::vector<int64_t>>;

// A pass's primitive, and the reorder between XLA's HWIO kernel and the
// layout oneDNN chose for it (none where oneDNN reads or writes HWIO).
struct Plan {
  memory::desc input, output;  // The maps, NHWC.
  dnnl::primitive primitive;
  memory::desc scratchpad;
  memory::desc kernel;  // As oneDNN keeps it.
  bool reordered;
  dnnl::reorder reorder;
  memory::desc reorder_scratchpad;
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::primitive_attr UserScratchpad() {  // Calls may run concurrently: no shared scratchpad.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

std::unique_ptr<Plan> MakePlan(const Key& key) {
  const auto& [pass, x, y, w, strides, pads] = key;
  auto f32 = memory::data_type::f32;
  // oneDNN names dimensions N, C, H, W and O, I, H, W whatever the layout.
  memory::desc src({x[0], x[3], x[1], x[2]}, f32, memory::format_tag::nhwc);
  memory::desc dst({y[0], y[3], y[1], y[2]}, f32, memory::format_tag::nhwc);
  memory::dims kernel_dims{w[3], w[2], w[0], w[1]};
  memory::desc any(kernel_dims, f32, memory::format_tag::any);
  memory::desc hwio(kernel_dims, f32, memory::format_tag::hwio);
  memory::dims stride{strides[0], strides[1]}, pad_l{pads[0], pads[2]}, pad_r{pads[1], pads[3]};
  auto& engine = Engine();
  auto attr = UserScratchpad();
  auto direct = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::primitive_desc forward(engine, dnnl::prop_kind::forward_training,
                                                    direct, src, any, dst, stride, pad_l, pad_r,
                                                    attr);
  auto plan = std::make_unique<Plan>();
  plan->input = src;
  plan->output = dst;
  dnnl::primitive_desc_base pd = forward;
  if (pass == Pass::kForward) {
    plan->primitive = dnnl::convolution_forward(forward);
    plan->kernel = forward.weights_desc();
  } else if (pass == Pass::kInputGrad) {
    dnnl::convolution_backward_data::primitive_desc backward(
        engine, direct, src, any, dst, stride, pad_l, pad_r, forward, attr);
    plan->primitive = dnnl::convolution_backward_data(backward);
    plan->kernel = backward.weights_desc();
    pd = backward;
  } else {
    dnnl::convolution_backward_weights::primitive_desc backward(
        engine, direct, src, any, dst, stride, pad_l, pad_r, forward, attr);
    plan->primitive = dnnl::convolution_backward_weights(backward);
    plan->kernel = backward.diff_weights_desc();
    pd = backward;
  }
  plan->scratchpad = pd.scratchpad_desc();
  plan->reordered = plan->kernel != hwio;
  if (plan->reordered) {
    bool to_hwio = pass == Pass::kKernelGrad;
    dnnl::reorder::primitive_desc reorder(engine, to_hwio ? plan->kernel : hwio, engine,
                                          to_hwio ? hwio : plan->kernel, attr);
    plan->reorder = dnnl::reorder(reorder);
    plan->reorder_scratchpad = reorder.scratchpad_desc();
  }
  return plan;
}

// Making a primitive generates its code: once per shape, then shared.
const Plan& PlanFor(const Key& key) {
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mutex);
  auto& plan = plans[key];
  if (!plan) plan = MakePlan(key);
  return *plan;
}

// Memory for a scratchpad or a reordered kernel, owned by the call.
struct Scratch {
  std::vector<uint8_t> bytes;
  memory memory_;
  Scratch(const memory::desc& desc)
      : bytes(desc.get_size()), memory_(desc, Engine(), bytes.data()) {}
};

std::vector<int64_t> Dims(ffi::AnyBuffer::Dimensions dims) {
  return std::vector<int64_t>(dims.begin(), dims.end());
}

using Maps = ffi::Buffer<ffi::F32, 4>;

// x: the input maps, y: the output maps, w: the kernel, each an operand or
// the result as `pass` has it.
ffi::Error Run(Pass pass, Maps x, Maps y, Maps w, ffi::Span<const int64_t> strides,
               ffi::Span<const int64_t> pads) {
  if (strides.size() != 2 || pads.size() != 4)
    return ffi::Error::InvalidArgument("strides take 2 values and pads 4");
  Key key{pass, Dims(x.dimensions()), Dims(y.dimensions()), Dims(w.dimensions()),
          std::vector<int64_t>(strides.begin(), strides.end()),
          std::vector<int64_t>(pads.begin(), pads.end())};
  try {
    const Plan& plan = PlanFor(key);
    auto& engine = Engine();
    dnnl::stream stream(engine);
    const auto& shape = std::get<3>(key);
    memory::desc hwio({shape[3], shape[2], shape[0], shape[1]}, memory::data_type::f32,
                      memory::format_tag::hwio);
    memory xla_kernel(hwio, engine, w.typed_data());
    Scratch scratchpad(plan.scratchpad), kernel(plan.reordered ? plan.kernel : memory::desc());
    memory onednn_kernel = plan.reordered ? kernel.memory_ : xla_kernel;
    auto maps = [&](Maps buffer, const memory::desc& nhwc) {
      return memory(nhwc, engine, buffer.typed_data());
    };
    auto reorder = [&]() {
      Scratch reorder_scratchpad(plan.reorder_scratchpad);
      bool to_hwio = pass == Pass::kKernelGrad;
      plan.reorder.execute(stream, {{DNNL_ARG_FROM, to_hwio ? onednn_kernel : xla_kernel},
                                    {DNNL_ARG_TO, to_hwio ? xla_kernel : onednn_kernel},
                                    {DNNL_ARG_SCRATCHPAD, reorder_scratchpad.memory_}});
    };
    if (pass != Pass::kKernelGrad && plan.reordered) reorder();
    if (pass == Pass::kForward) {
      plan.primitive.execute(stream, {{DNNL_ARG_SRC, maps(x, plan.input)},
                                      {DNNL_ARG_WEIGHTS, onednn_kernel},
                                      {DNNL_ARG_DST, maps(y, plan.output)},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad.memory_}});
    } else if (pass == Pass::kInputGrad) {
      plan.primitive.execute(stream, {{DNNL_ARG_DIFF_DST, maps(y, plan.output)},
                                      {DNNL_ARG_WEIGHTS, onednn_kernel},
                                      {DNNL_ARG_DIFF_SRC, maps(x, plan.input)},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad.memory_}});
    } else {
      plan.primitive.execute(stream, {{DNNL_ARG_SRC, maps(x, plan.input)},
                                      {DNNL_ARG_DIFF_DST, maps(y, plan.output)},
                                      {DNNL_ARG_DIFF_WEIGHTS, onednn_kernel},
                                      {DNNL_ARG_SCRATCHPAD, scratchpad.memory_}});
    }
    if (pass == Pass::kKernelGrad && plan.reordered) reorder();
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(Maps x, Maps w, ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> pads, ffi::Result<Maps> y) {
  return Run(Pass::kForward, x, *y, w, strides, pads);
}

ffi::Error InputGrad(Maps y, Maps w, ffi::Span<const int64_t> strides,
                     ffi::Span<const int64_t> pads, ffi::Result<Maps> x) {
  return Run(Pass::kInputGrad, *x, y, w, strides, pads);
}

ffi::Error KernelGrad(Maps x, Maps y, ffi::Span<const int64_t> strides,
                      ffi::Span<const int64_t> pads, ffi::Result<Maps> w) {
  return Run(Pass::kKernelGrad, x, y, *w, strides, pads);
}

}  // namespace

#define CNNJAX_BIND                                                                    \
  ffi::Ffi::Bind().Arg<Maps>().Arg<Maps>().Attr<ffi::Span<const int64_t>>("strides") \
      .Attr<ffi::Span<const int64_t>>("pads").Ret<Maps>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvForward, Forward, CNNJAX_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvInputGrad, InputGrad, CNNJAX_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvKernelGrad, KernelGrad, CNNJAX_BIND);
