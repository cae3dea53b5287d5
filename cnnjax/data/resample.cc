// CnnjaxResample: TensorFlow's ScaleAndTranslate with the triangle kernel and
// antialiasing (what tf.image.resize(..., antialias=True) runs), for one
// [height, width, channels] image, with the same weights summed in the same
// order: the same bits. TensorFlow's kernel is generic over kernels and
// compiled for the oldest x86-64 it supports; this one is compiled where it
// runs (cnnjax/data/resample.py), its inner loops vectorised, and takes 0.6
// ms of CPU where TensorFlow's took 1.8-2.7 ms for ResNet's 224x224 crop in
// tf.data: most of what an augmented ImageNet image cost.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

// The hot loop compiled for AVX-512 and AVX2 beside plain x86-64, the
// processor choosing at load time (GCC's and Clang's function clones).
#if defined(__x86_64__) && defined(__GNUC__)
#define CNNJAX_VECTORISED \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CNNJAX_VECTORISED
#endif

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
namespace shape_inference = tensorflow::shape_inference;

// The input pixels each output pixel of one axis reads: span_size weights
// per output, from starts[output] on (as ComputeSpansCore in
// tensorflow/core/kernels/image/scale_and_translate_op.cc).
struct Spans {
  int span_size;
  std::vector<int> starts;
  std::vector<float> weights;
};

float Triangle(float x) {
  x = std::abs(x);
  return x < 1.0f ? 1.0f - x : 0.0f;
}

Spans ComputeSpans(int64_t output_size, int64_t input_size, float scale, float translate) {
  // Output x samples the input at (x + 0.5) / scale - translate / scale;
  // when shrinking, the kernel widens by 1 / scale (antialiasing).
  const float inv_scale = 1.0 / scale;
  const float inv_translate = -inv_scale * translate;
  const float kernel_scale = std::max(inv_scale, 1.0f);
  const float one_over_kernel_scale = 1.0f / kernel_scale;
  Spans spans;
  spans.span_size = std::min(2 * static_cast<int>(std::ceil(kernel_scale)) + 1,
                             static_cast<int>(input_size));
  spans.starts.assign(output_size, 0);
  spans.weights.assign(output_size * spans.span_size, 0.0f);
  std::vector<float> weights;
  for (int64_t x = 0; x < output_size; ++x) {
    const float sample = (x + 0.5f) * inv_scale + inv_translate;
    if (sample < 0 || sample > input_size) continue;  // Outside the input: zeros.
    const int64_t last = input_size - 1;
    const int64_t start = std::clamp<int64_t>(std::ceil(sample - kernel_scale - 0.5f), 0, last);
    const int64_t end = std::clamp<int64_t>(std::floor(sample + kernel_scale - 0.5f), 0, last) + 1;
    float total = 0.0f;
    weights.clear();
    for (int64_t source = start; source < end; ++source) {
      const float weight = Triangle((source + 0.5f - sample) * one_over_kernel_scale);
      total += weight;
      weights.push_back(weight);
    }
    if (std::abs(total) >= 1000.0f * std::numeric_limits<float>::min()) {
      const float normaliser = 1.0f / total;
      for (size_t k = 0; k < weights.size(); ++k) {
        spans.weights[x * spans.span_size + k] = weights[k] * normaliser;
      }
    }
    spans.starts[x] = start;
  }
  return spans;
}

// Both passes are this: each of `lines` [output_lines, length] the weighted
// sum of lines of `input` [input_lines, length], tap by tap from zero, as
// TensorFlow sums them. Contiguous lines, so vectorised; the sums kept in
// registers, block by block.
template <typename T>
CNNJAX_VECTORISED void ResampleLines(const Spans& spans, const T* __restrict input,
                                     int64_t input_lines, int64_t length,
                                     float* __restrict lines) {
  constexpr int64_t kBlock = 64;  // Sums at once: four AVX-512 registers.
  for (size_t line = 0; line < spans.starts.size(); ++line) {
    const int start = spans.starts[line];
    const int taps = std::min<int64_t>(start + spans.span_size, input_lines) - start;
    const float* weights = spans.weights.data() + line * spans.span_size;
    const T* first_tap = input + start * length;
    float* out = lines + line * length;
    for (int64_t first = 0; first < length; first += kBlock) {
      const int64_t count = std::min(kBlock, length - first);
      float sums[kBlock] = {};
      for (int k = 0; k < taps; ++k) {
        const T* __restrict in = first_tap + k * length + first;
        for (int64_t i = 0; i < count; ++i) sums[i] += weights[k] * static_cast<float>(in[i]);
      }
      std::copy(sums, sums + count, out + first);
    }
  }
}

// [rows, columns, channels] to [columns, rows, channels], a 32x32 tile of
// pixels at a time so that reads and writes stay in the L1 cache (copying
// pixel by pixel along rows had taken more time than both passes' sums).
// `Channels` known at compile time (1 or 3) makes each copy a few moves.
template <int Channels>
void Transpose(const float* __restrict input, int64_t rows, int64_t columns, int channels,
               float* __restrict output) {
  if (Channels) channels = Channels;
  constexpr int64_t kTile = 32;
  for (int64_t first_row = 0; first_row < rows; first_row += kTile) {
    const int64_t end_row = std::min(rows, first_row + kTile);
    for (int64_t first_column = 0; first_column < columns; first_column += kTile) {
      const int64_t end_column = std::min(columns, first_column + kTile);
      for (int64_t column = first_column; column < end_column; ++column) {
        const float* in = input + (first_row * columns + column) * channels;
        float* out = output + (column * rows + first_row) * channels;
        for (int64_t row = first_row; row < end_row; ++row) {
          for (int c = 0; c < channels; ++c) out[c] = in[c];
          in += columns * channels;
          out += channels;
        }
      }
    }
  }
}

void Transpose(const float* input, int64_t rows, int64_t columns, int channels, float* output) {
  const auto transpose = channels == 3   ? Transpose<3>
                         : channels == 1 ? Transpose<1>
                                         : Transpose<0>;
  transpose(input, rows, columns, channels, output);
}

// Rows, then columns as rows of the transposed intermediate, into `output`
// [output_height, output_width, channels]. `scratch` is grown as needed.
template <typename T>
void Resample(const Spans& row_spans, const Spans& column_spans, const T* image,
              int64_t height, int64_t width, int channels, std::vector<float>& scratch,
              float* output) {
  const int64_t output_height = row_spans.starts.size();
  const int64_t output_width = column_spans.starts.size();
  const int64_t rows_size = output_height * width * channels;
  const int64_t output_size = output_width * output_height * channels;
  scratch.resize(std::max<size_t>(scratch.size(), 2 * rows_size + output_size));
  float* rows = scratch.data();
  float* columns_first = rows + rows_size;
  float* transposed_output = columns_first + rows_size;
  ResampleLines(row_spans, image, height, width * channels, rows);
  Transpose(rows, output_height, width, channels, columns_first);
  ResampleLines(column_spans, columns_first, width, output_height * channels, transposed_output);
  Transpose(transposed_output, output_width, output_height, channels, output);
}

template <typename T>
class ResampleOp : public OpKernel {
 public:
  explicit ResampleOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& image = context->input(0);
    OP_REQUIRES(context, image.dims() == 3,
                InvalidArgument("image must be [height, width, channels], got ",
                                image.shape().DebugString()));
    const int64_t height = image.dim_size(0), width = image.dim_size(1);
    const int channels = image.dim_size(2);
    OP_REQUIRES(context, height > 0 && width > 0 && channels > 0,
                InvalidArgument("image must not be empty, got ", image.shape().DebugString()));
    const auto size = Pair<int32_t>(context, 1, "size");
    const auto scale = Pair<float>(context, 2, "scale");
    const auto translation = Pair<float>(context, 3, "translation");
    if (!context->status().ok()) return;
    OP_REQUIRES(context, size[0] > 0 && size[1] > 0,
                InvalidArgument("size must be positive, got ", size[0], "x", size[1]));
    OP_REQUIRES(context, scale[0] > 0 && scale[1] > 0, InvalidArgument("scale must be positive"));

    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({size[0], size[1], channels}), &output));
    const Spans row_spans = ComputeSpans(size[0], height, scale[0], translation[0]);
    const Spans column_spans = ComputeSpans(size[1], width, scale[1], translation[1]);
    // Kept between calls: a fresh megabyte each time would be fresh pages.
    thread_local std::vector<float> scratch;
    Resample(row_spans, column_spans, image.flat<T>().data(), height, width, channels, scratch,
             output->flat<float>().data());
  }

 private:
  template <typename V>
  static std::vector<V> Pair(OpKernelContext* context, int index, const char* name) {
    const Tensor& pair = context->input(index);
    if (pair.NumElements() != 2) {
      context->SetStatus(InvalidArgument(name, " must have two elements, got ",
                                         pair.shape().DebugString()));
      return {V(), V()};
    }
    const auto values = pair.flat<V>();
    return {values(0), values(1)};
  }
};

}  // namespace

REGISTER_OP("CnnjaxResample")
    .Input("image: T")
    .Input("size: int32")
    .Input("scale: float")
    .Input("translation: float")
    .Output("resampled: float")
    .Attr("T: {uint8, float}")
    .SetShapeFn([](shape_inference::InferenceContext* context) {
      shape_inference::ShapeHandle image, size, resampled;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(0), 3, &image));
      TF_RETURN_IF_ERROR(context->MakeShapeFromShapeTensor(1, &size));
      TF_RETURN_IF_ERROR(context->WithRank(size, 2, &size));
      TF_RETURN_IF_ERROR(
          context->Concatenate(size, context->Vector(context->Dim(image, 2)), &resampled));
      context->set_output(0, resampled);
      return absl::OkStatus();
    });

#define CNNJAX_REGISTER_RESAMPLE(T)                      \
  REGISTER_KERNEL_BUILDER(Name("CnnjaxResample")         \
                              .Device(tensorflow::DEVICE_CPU) \
                              .TypeConstraint<T>("T")    \
                              .HostMemory("size")        \
                              .HostMemory("scale")       \
                              .HostMemory("translation"), \
                          ResampleOp<T>)
CNNJAX_REGISTER_RESAMPLE(uint8_t);
CNNJAX_REGISTER_RESAMPLE(float);
