// Fused multi-head self-attention for tokenlab's wasm backend, forward and
// backward, on tfjs's own wasm heap (the module imports its memory).
//
// Layouts (row-major float32, as tfjs stores them):
//   qkv  [B, N, 3, H, hd]   the qkv projection, timm's layout
//   out  [B, N, H, hd]      heads merged back: [B, N, D]
//   p    [B, H, N, N]       softmax(q k^T * scale), saved for the backward
//   dqkv [B, N, 3, H, hd]   gradient of qkv
//   row  [N]                scratch for one row of dP
//
// No static data and no address-taken locals: nothing here touches memory
// except through the pointers it is given (checked by the build script,
// which refuses a module that uses the stack pointer).
//
// Build: deno run -A lib/kernels/build.ts (clang 14+ and wasm-ld).

#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

// sum of a[0..n) * b[0..n)
static inline float dot(const float *a, const float *b, int n) {
  v128_t acc0 = wasm_f32x4_splat(0.f), acc1 = wasm_f32x4_splat(0.f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
    acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(wasm_v128_load(a + i + 4), wasm_v128_load(b + i + 4)));
  }
  acc0 = wasm_f32x4_add(acc0, acc1);
  for (; i + 4 <= n; i += 4) {
    acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  }
  float s = wasm_f32x4_extract_lane(acc0, 0) + wasm_f32x4_extract_lane(acc0, 1) +
            wasm_f32x4_extract_lane(acc0, 2) + wasm_f32x4_extract_lane(acc0, 3);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// y[0..n) += a * x[0..n)
static inline void axpy(float *y, float a, const float *x, int n) {
  v128_t va = wasm_f32x4_splat(a);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_f32x4_mul(va, wasm_v128_load(x + i))));
  }
  for (; i < n; i++) y[i] += a * x[i];
}

static inline void zero(float *y, int n) {
  v128_t z = wasm_f32x4_splat(0.f);
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, z);
  for (; i < n; i++) y[i] = 0.f;
}

#include "exp_nonpos.h"

EXPORT("attention_forward")
void attention_forward(const float *qkv, float *out, float *p, int B, int N, int H, int hd, float scale) {
  const int D = H * hd, row3 = 3 * D;
  for (int b = 0; b < B; b++) {
    const float *base = qkv + (long)b * N * row3;
    for (int h = 0; h < H; h++) {
      float *ph = p + ((long)(b * H + h)) * N * N;
      for (int i = 0; i < N; i++) {
        const float *q = base + (long)i * row3 + h * hd;
        float *prow = ph + (long)i * N;
        float m = -3.4e38f;
        for (int j = 0; j < N; j++) {
          float s = scale * dot(q, base + (long)j * row3 + D + h * hd, hd);
          prow[j] = s;
          if (s > m) m = s;
        }
        float sum = 0.f;
        for (int j = 0; j < N; j++) {
          float e = exp_nonpos(prow[j] - m);
          prow[j] = e;
          sum += e;
        }
        float inv = 1.f / sum;
        for (int j = 0; j < N; j++) prow[j] *= inv;
        float *o = out + ((long)(b * N + i)) * D + h * hd;
        zero(o, hd);
        for (int j = 0; j < N; j++) axpy(o, prow[j], base + (long)j * row3 + 2 * D + h * hd, hd);
      }
    }
  }
}

EXPORT("attention_backward")
void attention_backward(const float *dout, const float *qkv, const float *p, float *dqkv, float *row,
                        int B, int N, int H, int hd, float scale) {
  const int D = H * hd, row3 = 3 * D;
  for (int b = 0; b < B; b++) {
    const float *base = qkv + (long)b * N * row3;
    float *dbase = dqkv + (long)b * N * row3;
    for (int j = 0; j < N; j++) zero(dbase + (long)j * row3 + D, 2 * D);  // dk, dv of this image
    for (int h = 0; h < H; h++) {
      const float *ph = p + ((long)(b * H + h)) * N * N;
      for (int i = 0; i < N; i++) {
        const float *prow = ph + (long)i * N;
        const float *doi = dout + ((long)(b * N + i)) * D + h * hd;
        const float *qi = base + (long)i * row3 + h * hd;
        // dP_ij = dO_i . v_j, and the row's sum of P dP
        float r = 0.f;
        for (int j = 0; j < N; j++) {
          float d = dot(doi, base + (long)j * row3 + 2 * D + h * hd, hd);
          row[j] = d;
          r += prow[j] * d;
        }
        float *dqi = dbase + (long)i * row3 + h * hd;
        zero(dqi, hd);
        for (int j = 0; j < N; j++) {
          float ds = prow[j] * (row[j] - r) * scale;  // dS_ij * scale
          axpy(dqi, ds, base + (long)j * row3 + D + h * hd, hd);           // dQ_i += dS_ij k_j
          axpy(dbase + (long)j * row3 + D + h * hd, ds, qi, hd);           // dK_j += dS_ij q_i
          axpy(dbase + (long)j * row3 + 2 * D + h * hd, prow[j], doi, hd); // dV_j += P_ij dO_i
        }
      }
    }
  }
}

// The softmax part of the attention on its own, for when the products run
// elsewhere (a native BLAS): each of `rows` rows of n scores becomes its
// softmax, in place.
EXPORT("softmax_rows")
void softmax_rows(float *s, int rows, int n) {
  for (long r = 0; r < rows; r++) {
    float *x = s + r * n;
    float m = -3.4e38f;
    for (int j = 0; j < n; j++) if (x[j] > m) m = x[j];
    float sum = 0.f;
    for (int j = 0; j < n; j++) {
      float e = exp_nonpos(x[j] - m);
      x[j] = e;
      sum += e;
    }
    float inv = 1.f / sum;
    for (int j = 0; j < n; j++) x[j] *= inv;
  }
}

// Its gradient: d holds dP on entry and scale * dS on return, where
// dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik).
EXPORT("softmax_grad_rows")
void softmax_grad_rows(float *d, const float *p, int rows, int n, float scale) {
  for (long r = 0; r < rows; r++) {
    float *dr = d + r * n;
    const float *pr = p + r * n;
    float s = dot(pr, dr, n);
    for (int j = 0; j < n; j++) dr[j] = scale * pr[j] * (dr[j] - s);
  }
}
