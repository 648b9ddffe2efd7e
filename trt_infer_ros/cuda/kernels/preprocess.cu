// One-pass image preprocessing: uint8 source (1, 3 or 4 channels, any row step)
// -> bilinear resize into a letterbox or stretched region, reproducing cv2.resize INTER_LINEAR
// on uint8 (half-pixel centres, edge clamp, 11-bit fixed-point weights, its rounding)
// -> per-channel lookup table (256 entries: (value * scale - mean) / std, already rounded to
//    the output dtype on the host exactly as the CPU path computes it)
// -> NCHW or NHWC, float32 or float16. One thread per output pixel (all 3 channels).

struct PreprocessArgs {
    int src_w, src_h, src_step, src_channels;
    int dst_w, dst_h;
    int nchw, fp16;
    // content region inside the network input: [off_x, off_x + new_w) x [off_y, off_y + new_h)
    int off_x, off_y, new_w, new_h;
    int src_channel[3];               // source channel feeding output channel c
    int pad_value;                    // letterbox border, uint8 units (looked up like a pixel)
    int area2x;                       // source exactly 2x the resized size: cv2 averages 2x2
};

__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ void store(void* dst, long long idx, float v, int fp16) {
    if (fp16) reinterpret_cast<unsigned short*>(dst)[idx] = f32_to_f16(v);
    else reinterpret_cast<float*>(dst)[idx] = v;
}

// xtab[rx] = (byte offset of column x0, of x1, weight x0, weight x1) and
// ytab[ry] = (byte offset of row y0, of y1, weight y0, weight y1): cv2's INTER_LINEAR source
// coordinates and 11-bit weights, computed once per source shape on the host.
extern "C" __global__ void preprocess(const unsigned char* __restrict__ src, void* __restrict__ dst,
                                      const float* __restrict__ lut, const int4* __restrict__ xtab,
                                      const int4* __restrict__ ytab, PreprocessArgs a) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= a.dst_w || y >= a.dst_h) return;
    float out[3];
    int rx = x - a.off_x, ry = y - a.off_y;
    if (rx < 0 || ry < 0 || rx >= a.new_w || ry >= a.new_h) {
        out[0] = lut[a.pad_value]; out[1] = lut[256 + a.pad_value]; out[2] = lut[512 + a.pad_value];
    } else {
        int4 xt = xtab[rx], yt = ytab[ry];
        const unsigned char* r0 = src + yt.x;
        const unsigned char* r1 = src + yt.y;
        #pragma unroll
        for (int k = 0; k < 3; ++k) {
            int ch = a.src_channel[k];
            // taps with weight 0 (edges, unresized axes) are not read
            int p00 = r0[xt.x + ch];
            int p01 = xt.w ? r0[xt.y + ch] : 0;
            int p10 = yt.w ? r1[xt.x + ch] : 0;
            int p11 = (xt.w && yt.w) ? r1[xt.y + ch] : 0;
            int v;
            if (a.area2x) {
                v = (p00 + p01 + p10 + p11 + 2) >> 2;
            } else {
                // horizontal pass in integers, then cv2's vectorised vertical pass:
                // ((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16), rounded by (t + 2) >> 2
                int h0 = p00 * xt.z + p01 * xt.w;
                int h1 = p10 * xt.z + p11 * xt.w;
                int t = ((yt.z * (h0 >> 4)) >> 16) + ((yt.w * (h1 >> 4)) >> 16);
                v = min(max((t + 2) >> 2, 0), 255);
            }
            out[k] = lut[k * 256 + v];
        }
    }
    long long plane = (long long)a.dst_w * a.dst_h;
    long long pix = (long long)y * a.dst_w + x;
    #pragma unroll
    for (int k = 0; k < 3; ++k) {
        long long idx = a.nchw ? k * plane + pix : pix * 3 + k;
        store(dst, idx, out[k], a.fp16);
    }
}
