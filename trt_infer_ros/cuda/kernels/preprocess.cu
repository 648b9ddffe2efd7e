// One-pass image preprocessing: uint8 source (1, 3 or 4 channels, any row step)
// -> bilinear resize into a letterbox or stretched region (cv2 INTER_LINEAR conventions:
// half-pixel centres, edge clamp, result rounded to uint8 like cv2's uint8 resize)
// -> per-channel  value * mul + add  (mul = scale/std, add = -mean/std)
// -> NCHW or NHWC, float32 or float16. One thread per output pixel (all 3 channels).

struct PreprocessArgs {
    int src_w, src_h, src_step, src_channels;
    int dst_w, dst_h;
    int nchw, fp16;
    // content region inside the network input: [off_x, off_x + new_w) x [off_y, off_y + new_h)
    int off_x, off_y, new_w, new_h;
    float inv_scale_x, inv_scale_y;   // source pixels per resized pixel (src_w / new_w)
    int src_channel[3];               // source channel feeding output channel c
    float mul[3], add[3];
    float pad_out[3];                 // output value of the letterbox border per channel
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

__device__ __forceinline__ void coord(int d, float inv_scale, int size, int& i0, int& i1, float& w1) {
    float s = (d + 0.5f) * inv_scale - 0.5f;
    if (s < 0.f) s = 0.f;
    int i = (int)floorf(s);
    float f = s - (float)i;
    if (i >= size - 1) { i = size - 1; f = 0.f; }
    i0 = i;
    i1 = min(i + 1, size - 1);
    w1 = f;
}

extern "C" __global__ void preprocess(const unsigned char* __restrict__ src, void* __restrict__ dst,
                                      PreprocessArgs a) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= a.dst_w || y >= a.dst_h) return;
    float out[3];
    int rx = x - a.off_x, ry = y - a.off_y;
    if (rx < 0 || ry < 0 || rx >= a.new_w || ry >= a.new_h) {
        out[0] = a.pad_out[0]; out[1] = a.pad_out[1]; out[2] = a.pad_out[2];
    } else {
        int x0, x1, y0, y1; float fx, fy;
        coord(rx, a.inv_scale_x, a.src_w, x0, x1, fx);
        coord(ry, a.inv_scale_y, a.src_h, y0, y1, fy);
        const unsigned char* r0 = src + (long long)y0 * a.src_step;
        const unsigned char* r1 = src + (long long)y1 * a.src_step;
        int c = a.src_channels;
        #pragma unroll
        for (int k = 0; k < 3; ++k) {
            int ch = a.src_channel[k];
            float p00 = r0[x0 * c + ch], p01 = r0[x1 * c + ch];
            float p10 = r1[x0 * c + ch], p11 = r1[x1 * c + ch];
            float top = p00 + (p01 - p00) * fx;
            float bot = p10 + (p11 - p10) * fx;
            float v = rintf(top + (bot - top) * fy);
            v = fminf(fmaxf(v, 0.f), 255.f);
            out[k] = v * a.mul[k] + a.add[k];
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
