// Shared by the kernels: exp for non-positive arguments (softmax rows after
// the maximum is subtracted, erf's exp(-x^2), the normal density).

#pragma once

// exp(x) for x <= 0, as 2^k * exp(r), |r| <= ln2/2, degree-7 polynomial
// (relative error below 2e-7). Branch-free, so that the loops using it
// vectorize: inputs below -87 give exp(-87), about 1.6e-38, instead of 0.
static inline float exp_nonpos(float x) {
  x = x < -87.f ? -87.f : x;
  const float log2e = 1.44269504088896341f;
  float kf = __builtin_rintf(x * log2e);
  float r = (x - kf * 0.693145751953125f) - kf * 1.428606765330187e-06f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int k = (int)kf;
  union { float f; int i; } u;
  u.i = (k + 127) << 23;
  return p * u.f;
}
