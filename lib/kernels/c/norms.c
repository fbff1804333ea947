// GELU, LayerNorm and BatchNorm, forward and backward, for tokenlab's wasm
// backend, on tfjs's own wasm heap (the module imports its memory). Each is
// one pass (or two) over memory where tfjs runs five to fifteen kernels,
// each writing a full tensor.
//
// Layouts: row-major float32; "rows" x "C" with C the last (channel) axis.
// No static data and no address-taken locals: nothing here touches memory
// except through the pointers it is given (checked by the build script).
//
// Build: deno run -A lib/kernels/build.ts (clang 14+ and wasm-ld).

#define EXPORT(name) __attribute__((export_name(name)))

#include "exp_nonpos.h"

// erf(x) by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), the
// formula tfjs's own Erf kernels use; branch-free.
static inline float erf_as(float x) {
  float a = __builtin_fabsf(x);
  float t = 1.f / (1.f + 0.3275911f * a);
  float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
               t * (-1.453152027f + t * 1.061405429f))));
  return __builtin_copysignf(1.f - poly * exp_nonpos(-a * a), x);
}

// y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact GELU.
EXPORT("gelu_forward")
void gelu_forward(const float *x, float *y, int n) {
  for (int i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.f + erf_as(v * 0.70710678118654752f));
  }
}

// dx = dy (Phi(x) + x phi(x)), phi the standard normal density.
EXPORT("gelu_backward")
void gelu_backward(const float *dy, const float *x, float *dx, int n) {
  for (int i = 0; i < n; i++) {
    float v = x[i];
    float cdf = 0.5f * (1.f + erf_as(v * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * exp_nonpos(-0.5f * v * v);
    dx[i] = dy[i] * (cdf + v * pdf);
  }
}

// LayerNorm over the last axis: y = (x - mean) rstd w + b per row, with the
// row's mean and rstd = 1 / sqrt(var + eps) kept for the backward pass.
EXPORT("layernorm_forward")
void layernorm_forward(const float *x, const float *w, const float *b, float *y,
                       float *mean, float *rstd, int rows, int C, float eps) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float s = 0.f;
    for (int c = 0; c < C; c++) s += xr[c];
    float m = s / C;
    float v = 0.f;
    for (int c = 0; c < C; c++) {
      float d = xr[c] - m;
      v += d * d;
    }
    float inv = 1.f / __builtin_sqrtf(v / C + eps);
    mean[r] = m;
    rstd[r] = inv;
    float *yr = y + r * C;
    for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * inv * w[c] + b[c];
  }
}

// Its gradient: with xhat = (x - mean) rstd and g = dy w,
// dx = rstd (g - mean(g) - xhat mean(g xhat)), dw = sum dy xhat, db = sum dy.
EXPORT("layernorm_backward")
void layernorm_backward(const float *dy, const float *x, const float *w,
                        const float *mean, const float *rstd, float *dx,
                        float *dw, float *db, int rows, int C) {
  for (int c = 0; c < C; c++) {
    dw[c] = 0.f;
    db[c] = 0.f;
  }
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C, *gr = dy + r * C;
    float m = mean[r], inv = rstd[r];
    float sg = 0.f, sgx = 0.f;
    for (int c = 0; c < C; c++) {
      float xh = (xr[c] - m) * inv;
      float g = gr[c] * w[c];
      sg += g;
      sgx += g * xh;
      dw[c] += gr[c] * xh;
      db[c] += gr[c];
    }
    sg /= C;
    sgx /= C;
    float *dxr = dx + r * C;
    for (int c = 0; c < C; c++) {
      float xh = (xr[c] - m) * inv;
      dxr[c] = inv * (gr[c] * w[c] - sg - xh * sgx);
    }
  }
}

// BatchNorm's batch statistics over every row: per channel mean and biased
// variance (two passes, accumulated in double in `acc`, 2 C doubles).
EXPORT("batchnorm_moments")
void batchnorm_moments(const float *x, float *mean, float *var, double *acc,
                       int rows, int C) {
  for (int c = 0; c < 2 * C; c++) acc[c] = 0.0;
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    for (int c = 0; c < C; c++) acc[c] += xr[c];
  }
  for (int c = 0; c < C; c++) mean[c] = (float)(acc[c] / rows);
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    for (int c = 0; c < C; c++) {
      double d = (double)xr[c] - (double)mean[c];
      acc[C + c] += d * d;
    }
  }
  for (int c = 0; c < C; c++) var[c] = (float)(acc[C + c] / rows);
}

// y = (x - mean) invstd gamma + beta, per channel.
EXPORT("batchnorm_apply")
void batchnorm_apply(const float *x, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, float *y, int rows,
                     int C) {
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    for (int c = 0; c < C; c++) {
      yr[c] = (xr[c] - mean[c]) * invstd[c] * gamma[c] + beta[c];
    }
  }
}

// Its gradient through the batch statistics: with xhat = (x - mean) invstd,
// dbeta = sum dy, dgamma = sum dy xhat (accumulated in double in `acc`),
// dx = gamma invstd (dy - dbeta / n - xhat dgamma / n).
EXPORT("batchnorm_backward")
void batchnorm_backward(const float *dy, const float *x, const float *mean,
                        const float *invstd, const float *gamma, float *dx,
                        float *dgamma, float *dbeta, double *acc, int rows,
                        int C) {
  for (int c = 0; c < 2 * C; c++) acc[c] = 0.0;
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C, *gr = dy + r * C;
    for (int c = 0; c < C; c++) {
      acc[c] += gr[c];
      acc[C + c] += (double)gr[c] * ((xr[c] - mean[c]) * invstd[c]);
    }
  }
  for (int c = 0; c < C; c++) {
    dbeta[c] = (float)acc[c];
    dgamma[c] = (float)acc[C + c];
  }
  for (long r = 0; r < rows; r++) {
    const float *xr = x + r * C, *gr = dy + r * C;
    float *dxr = dx + r * C;
    for (int c = 0; c < C; c++) {
      float xh = (xr[c] - mean[c]) * invstd[c];
      dxr[c] = gamma[c] * invstd[c] *
               (gr[c] - dbeta[c] / rows - xh * dgamma[c] / rows);
    }
  }
}
