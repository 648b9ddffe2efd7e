// Detection decode and class-aware NMS on the GPU.
//
// decode_candidates: one thread per anchor row of the model output; picks the best class
//   (first maximum), score = class score (* objectness), keeps score >= threshold and allowed
//   classes, writes the box (x1,y1,x2,y2, network-input pixels) and class at the anchor's slot,
//   and appends a sortable key (score bits, then lower anchor index first) to `keys`.
//   Layouts without suppression (the model's rows are final detections: end-to-end YOLO,
//   RT-DETR) drop rows holding a non-finite number before the class filter, as the CPU decoder
//   does, and count them.
// sort_nms: one block; sorts the keys descending (bitonic), then greedy NMS in score order where
//   a box is suppressed by a kept box of the same class when inter > iou_thr * union, stops at
//   max_det kept boxes (without suppression: the first max_det keys), maps boxes back to source
//   pixels and writes the compact result: int32 kept, int32 sorted, int32 candidates, int32
//   non-finite rows dropped, then kept rows of x1,y1,x2,y2,score,class (float32).
// Thresholds, max_det, class filter and the source transform are read from DecodeParams in
// device memory each frame, so they change without a new graph capture.
// Compiled with --fmad=false so the float arithmetic rounds like the numpy reference.

#define MAX_DET_CAP 1024

struct DecodeParams {
    float score_thr, iou_thr;
    int max_det, use_class_mask;
    float scale_x, scale_y, pad_x, pad_y;
    float src_w, src_h;
    int reserved0, reserved1;
    unsigned int class_mask[32];
};

struct OutputLayout {
    int n_anchors, anchor_stride, attr_stride, fp16;
    int box_format;       // 0: cx,cy,w,h   1: x1,y1,x2,y2
    int obj_index;        // attribute index of objectness, -1 when none
    int cls_start, n_classes;
    int class_col;        // >= 0: class id is rint(attribute) and the score is attribute cls_start
    float box_scale_x, box_scale_y;  // box attributes times these (RT-DETR: normalised boxes)
    int suppress;         // 0: no NMS, the rows are final detections (top max_det by score)
};

__device__ __forceinline__ float ld(const void* p, long long i, int fp16) {
    if (fp16) {
        unsigned short h = reinterpret_cast<const unsigned short*>(p)[i];
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
        return f;
    }
    return reinterpret_cast<const float*>(p)[i];
}

__device__ __forceinline__ unsigned int orderable(float f) {
    unsigned int b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float from_orderable(unsigned int u) {
    unsigned int b = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    return __uint_as_float(b);
}

__device__ __forceinline__ bool finite(float f) { return fabsf(f) <= 3.40282347e38f; }

#define CLASS_SLICES 8

// Block (32, CLASS_SLICES): threadIdx.x picks the anchor, threadIdx.y a slice of the classes
// (c = y, y + 8, ...), so a warp reads 32 neighbouring anchors of one class at a time and the
// class scan runs 8-wide; the slices' best scores meet in shared memory.
extern "C" __global__ void decode_candidates(const void* __restrict__ out, OutputLayout L,
                                             const DecodeParams* __restrict__ p,
                                             unsigned long long* __restrict__ keys,
                                             float4* __restrict__ boxes, int* __restrict__ classes,
                                             unsigned int* __restrict__ count) {
    // count[0]: candidates, count[1]: rows dropped for a non-finite number (suppress == 0)
    __shared__ float best_v[CLASS_SLICES][32];
    __shared__ int best_c[CLASS_SLICES][32];
    const int lane = threadIdx.x, slice = threadIdx.y;
    const int a = blockIdx.x * 32 + lane;
    const bool valid = a < L.n_anchors;
    const long long base = (long long)a * L.anchor_stride;
    const long long s = L.attr_stride;
    const float thr = p->score_thr;
    float obj = 1.f;
    bool alive = valid;
    if (alive && L.class_col < 0 && L.obj_index >= 0) {
        obj = ld(out, base + L.obj_index * s, L.fp16);
        alive = obj >= thr;
    }
    if (alive && L.class_col < 0) {
        float bv = __int_as_float(0xff800000);   // -inf
        int bc = -1;
        for (int c = slice; c < L.n_classes; c += CLASS_SLICES) {
            float v = ld(out, base + (L.cls_start + c) * s, L.fp16);
            if (v != v) { bv = v; bc = c; break; }  // NaN: numpy's max is NaN, fails the threshold
            if (v > bv || bc < 0) { bv = v; bc = c; }
        }
        best_v[slice][lane] = bv;
        best_c[slice][lane] = bc;
    }
    __syncthreads();
    if (slice != 0 || !alive) return;
    float score;
    int cls;
    if (L.class_col >= 0) {
        score = ld(out, base + L.cls_start * s, L.fp16);
        cls = (int)rintf(ld(out, base + L.class_col * s, L.fp16));
    } else {
        // first maximum over all classes: larger score wins, equal scores keep the lower class
        float bv = best_v[0][lane];
        int bc = best_c[0][lane];
        for (int k = 1; k < CLASS_SLICES && k < L.n_classes; ++k) {
            float v = best_v[k][lane];
            int c = best_c[k][lane];
            if (v != v || bv != bv) { bv = bv != bv ? bv : v; continue; }
            if (v > bv || (v == bv && c < bc)) { bv = v; bc = c; }
        }
        cls = bc;
        score = L.obj_index >= 0 ? bv * obj : bv;
    }
    if (!(score >= thr)) return;
    // times 1.0f (every layout but RT-DETR's) is exact
    float b0 = ld(out, base, L.fp16) * L.box_scale_x;
    float b1 = ld(out, base + s, L.fp16) * L.box_scale_y;
    float b2 = ld(out, base + 2 * s, L.fp16) * L.box_scale_x;
    float b3 = ld(out, base + 3 * s, L.fp16) * L.box_scale_y;
    float4 box;
    if (L.box_format == 0) {
        float hw = b2 * 0.5f, hh = b3 * 0.5f;
        box = make_float4(b0 - hw, b1 - hh, b0 + hw, b1 + hh);
    } else {
        box = make_float4(b0, b1, b2, b3);
    }
    if (!L.suppress && !(finite(box.x) && finite(box.y) && finite(box.z) && finite(box.w) &&
                         finite(score))) {
        atomicAdd(count + 1, 1u);
        return;
    }
    if (p->use_class_mask) {
        if (cls < 0 || cls >= 1024) return;
        if (!((p->class_mask[cls >> 5] >> (cls & 31)) & 1u)) return;
    }
    boxes[a] = box;
    classes[a] = cls;
    unsigned int slot = atomicAdd(count, 1u);
    keys[slot] = ((unsigned long long)orderable(score) << 32) | (unsigned long long)(0xffffffffu - (unsigned int)a);
}

__device__ __forceinline__ bool suppressed_by(float4 k, float ak, float4 b, float ab, float iou_thr) {
    float w = fmaxf(fminf(k.z, b.z) - fmaxf(k.x, b.x), 0.f);
    float h = fmaxf(fminf(k.w, b.w) - fmaxf(k.y, b.y), 0.f);
    float inter = w * h;
    float uni = (ak + ab) - inter;
    return inter > iou_thr * uni;
}

__device__ __forceinline__ void write_header(int* result, int kept, unsigned int n,
                                             const unsigned int* count) {
    result[0] = kept; result[1] = (int)n; result[2] = (int)count[0]; result[3] = (int)count[1];
}

// One result row: the box back in source pixels (clipped to the image), score, class.
__device__ __forceinline__ void write_row(float* row, float4 b, float score, int cls,
                                          const DecodeParams* p) {
    row[0] = fminf(fmaxf((b.x - p->pad_x) / p->scale_x, 0.f), p->src_w);
    row[1] = fminf(fmaxf((b.y - p->pad_y) / p->scale_y, 0.f), p->src_h);
    row[2] = fminf(fmaxf((b.z - p->pad_x) / p->scale_x, 0.f), p->src_w);
    row[3] = fminf(fmaxf((b.w - p->pad_y) / p->scale_y, 0.f), p->src_h);
    row[4] = score;
    row[5] = (float)cls;
}

extern "C" __global__ void sort_nms(unsigned long long* __restrict__ keys, unsigned int capacity,
                                    const float4* __restrict__ boxes, const int* __restrict__ classes,
                                    const unsigned int* __restrict__ count,
                                    const DecodeParams* __restrict__ p, int* __restrict__ result,
                                    unsigned int shared_keys, int suppress) {
    // keys are sorted in dynamic shared memory when they fit (`shared_keys` entries), else in
    // place in global memory
    extern __shared__ unsigned long long skeys[];
    __shared__ float4 kept_box[MAX_DET_CAP];
    __shared__ float kept_area[MAX_DET_CAP];
    __shared__ int kept_cls[MAX_DET_CAP];
    __shared__ float kept_score[MAX_DET_CAP];

    const int tid = threadIdx.x, nthreads = blockDim.x;
    unsigned int n = min(*count, capacity);
    unsigned int P = 1;
    while (P < n) P <<= 1;
    unsigned long long* k = P <= shared_keys ? skeys : keys;
    for (unsigned int i = tid; i < P; i += nthreads) k[i] = i < n ? keys[i] : 0ull;
    __syncthreads();
    // bitonic sort, descending
    for (unsigned int size = 2; size <= P; size <<= 1) {
        for (unsigned int stride = size >> 1; stride > 0; stride >>= 1) {
            for (unsigned int i = tid; i < P; i += nthreads) {
                unsigned int l = i ^ stride;
                if (l > i) {
                    unsigned long long x = k[i], y = k[l];
                    bool desc = (i & size) == 0;
                    if (desc ? (x < y) : (x > y)) { k[i] = y; k[l] = x; }
                }
            }
            __syncthreads();
        }
    }
    int max_det = min(max(p->max_det, 0), MAX_DET_CAP);
    float* rows = reinterpret_cast<float*>(result + 4);
    if (!suppress) {
        // the rows are final detections: the best max_det by score, as they are
        int kept = min((int)n, max_det);
        for (int i = tid; i < kept; i += nthreads) {
            unsigned long long key = k[i];
            unsigned int a = 0xffffffffu - (unsigned int)(key & 0xffffffffull);
            write_row(rows + i * 6, boxes[a], from_orderable((unsigned int)(key >> 32)),
                      classes[a], p);
        }
        if (tid == 0) write_header(result, kept, n, count);
        return;
    }
    // Greedy NMS in score order by one warp, 32 candidates at a time: each lane takes one
    // candidate and tests it against everything kept so far; then the warp walks the 32 in
    // order, keeping the first survivor and letting it suppress the later lanes' candidates.
    if (tid >= 32) return;
    const unsigned FULL = 0xffffffffu;
    const int lane = tid;
    float iou_thr = p->iou_thr;
    int kept = 0;
    for (unsigned int base = 0; base < n && kept < max_det; base += 32) {
        unsigned int r = base + lane;
        unsigned long long my_key = 0ull;
        float4 my_box = make_float4(0.f, 0.f, 0.f, 0.f);
        int my_cls = 0;
        bool sup = r >= n;
        if (!sup) {
            my_key = k[r];
            unsigned int a = 0xffffffffu - (unsigned int)(my_key & 0xffffffffull);
            my_box = boxes[a];
            my_cls = classes[a];
        }
        float my_area = fmaxf(my_box.z - my_box.x, 0.f) * fmaxf(my_box.w - my_box.y, 0.f);
        for (int i = 0; i < kept && !sup; ++i)
            if (kept_cls[i] == my_cls && suppressed_by(kept_box[i], kept_area[i], my_box, my_area, iou_thr))
                sup = true;
        unsigned int m = min(32u, n - base);
        for (unsigned int j = 0; j < m && kept < max_det; ++j) {
            unsigned int alive = __ballot_sync(FULL, !sup);
            if (!((alive >> j) & 1u)) continue;
            float4 b;
            b.x = __shfl_sync(FULL, my_box.x, j); b.y = __shfl_sync(FULL, my_box.y, j);
            b.z = __shfl_sync(FULL, my_box.z, j); b.w = __shfl_sync(FULL, my_box.w, j);
            int c = __shfl_sync(FULL, my_cls, j);
            float ab = __shfl_sync(FULL, my_area, j);
            unsigned long long key = __shfl_sync(FULL, my_key, j);
            if (lane == 0) {
                kept_box[kept] = b; kept_area[kept] = ab; kept_cls[kept] = c;
                kept_score[kept] = from_orderable((unsigned int)(key >> 32));
            }
            ++kept;
            if ((unsigned int)lane > j && !sup && my_cls == c &&
                suppressed_by(b, ab, my_box, my_area, iou_thr))
                sup = true;
            __syncwarp();
        }
    }
    __syncwarp();
    // kept boxes back to source pixels, written by all lanes
    for (int i = lane; i < kept; i += 32)
        write_row(rows + i * 6, kept_box[i], kept_score[i], kept_cls[i], p);
    if (lane == 0) write_header(result, kept, n, count);
}
