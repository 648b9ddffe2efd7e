"""Preprocessing: every encoding, padded rows, both layouts and dtypes, exact letterbox maths."""
import cv2
import numpy as np
import pytest

from trt_infer_ros.models.spec import InputSpec
from trt_infer_ros.pipeline.preprocess import ENCODINGS, compute_transform, preprocess

CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4}


def random_image(encoding, h=45, w=70, seed=0):
    rng = np.random.default_rng(seed)
    c = CHANNELS[encoding]
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def to_rgb(image, encoding):
    """Independent colour reference by plain channel indexing."""
    if encoding == "mono8":
        return np.repeat(image[:, :, None], 3, axis=2)
    order = {"bgr8": [2, 1, 0], "rgb8": [0, 1, 2], "bgra8": [2, 1, 0], "rgba8": [0, 1, 2]}
    return image[:, :, order[encoding]]


def reference(image, encoding, spec):
    """Letterbox/stretch + normalisation written out step by step."""
    rgb = np.ascontiguousarray(to_rgb(image, encoding))
    h, w = rgb.shape[:2]
    if spec.resize == "stretch":
        nw, nh, left, top = spec.width, spec.height, 0, 0
    else:
        r = min(spec.width / w, spec.height / h)
        nw, nh = round(w * r), round(h * r)
        left, top = (spec.width - nw) // 2, (spec.height - nh) // 2
    canvas = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
    canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if spec.color == "BGR":
        canvas = canvas[:, :, ::-1]
    x = (canvas.astype(np.float64) * spec.scale - np.array(spec.mean)) / np.array(spec.std)
    x = x.transpose(2, 0, 1) if spec.layout == "NCHW" else x
    return x[None]


def padded_view(image):
    """The same pixels in a buffer whose rows carry 13 bytes of padding (as ROS step allows)."""
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    buf = np.full((h, w * c + 13), 77, np.uint8)
    buf[:, :w * c] = image.reshape(h, w * c)
    shape, strides = ((h, w), (buf.strides[0], 1)) if image.ndim == 2 else \
        ((h, w, c), (buf.strides[0], c, 1))
    view = np.ndarray(shape, np.uint8, buf, strides=strides)
    assert not view.flags.c_contiguous and np.array_equal(view, image)
    return view


SPECS = [
    InputSpec(64, 48),                                                    # YOLO style
    InputSpec(40, 40, layout="NHWC", resize="stretch", scale=1.0, pad_value=0),   # CenterNet
    InputSpec(56, 64, color="BGR", scale=1 / 255, mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225), pad_value=0, dtype="float16"),
    InputSpec(70, 45, layout="NHWC", color="BGR", dtype="float16"),        # no resize needed
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.width}x{s.height}{s.layout}{s.color}{s.dtype}")
def test_preprocess_matches_reference(encoding, spec):
    image = random_image(encoding)
    tensor, _ = preprocess(image, encoding, spec)
    assert tensor.shape == spec.shape and tensor.dtype == np.dtype(spec.dtype)
    atol = 1e-5 if spec.dtype == "float32" else 2e-2
    np.testing.assert_allclose(tensor.astype(np.float64), reference(image, encoding, spec),
                               atol=atol, rtol=1e-3 if spec.dtype == "float16" else 1e-6)
    # A view with padded rows gives identical results.
    padded, _ = preprocess(padded_view(image), encoding, spec)
    np.testing.assert_array_equal(padded, tensor)


def test_colour_order_and_padding_values():
    bgr = np.zeros((20, 40, 3), np.uint8)
    bgr[:] = (10, 20, 30)                                  # B, G, R
    t, tr = preprocess(bgr, "bgr8", InputSpec(40, 40, scale=1.0))
    assert (tr.pad_x, tr.pad_y) == (0, 10)
    assert t[0, :, 20, 20].tolist() == [30, 20, 10]        # RGB network order
    assert t[0, :, 0, 0].tolist() == [114, 114, 114]       # top border
    assert t[0, :, 39, 0].tolist() == [114, 114, 114]      # bottom border
    t, _ = preprocess(bgr, "bgr8", InputSpec(40, 40, color="BGR", scale=1.0, layout="NHWC"))
    assert t[0, 20, 20].tolist() == [10, 20, 30]
    mono = np.full((8, 8, 1), 200, np.uint8)               # HxWx1 mono8 works too
    t, _ = preprocess(mono, "mono8", InputSpec(8, 8))
    np.testing.assert_allclose(t, 200 / 255, rtol=1e-6)


def test_letterbox_geometry():
    tr, nw, nh = compute_transform(640, 480, InputSpec(320, 320))
    assert (nw, nh, tr.pad_x, tr.pad_y, tr.scale_x, tr.scale_y) == (320, 240, 0, 40, 0.5, 0.5)
    tr, nw, nh = compute_transform(480, 640, InputSpec(640, 640))
    assert (nw, nh, tr.pad_x, tr.pad_y) == (480, 640, 80, 0)
    tr, nw, nh = compute_transform(100, 50, InputSpec(64, 64, resize="stretch"))
    assert (tr.scale_x, tr.scale_y, tr.pad_x, tr.pad_y) == (0.64, 1.28, 0, 0)


@pytest.mark.parametrize("seed", range(20))
def test_transform_round_trips_boxes(seed):
    rng = np.random.default_rng(seed)
    w, h = (int(v) for v in rng.integers(17, 2000, 2))
    spec = InputSpec(int(rng.integers(32, 1280)), int(rng.integers(32, 1280)),
                     resize="letterbox" if seed % 3 else "stretch")
    tr, _, _ = compute_transform(w, h, spec)
    xy = rng.uniform(0, 1, (50, 2)) * [w, h]
    wh = rng.uniform(0, 1, (50, 2)) * [w, h]
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1).astype(np.float32)
    in_net = boxes.copy()
    in_net[:, 0::2] = boxes[:, 0::2] * tr.scale_x + tr.pad_x
    in_net[:, 1::2] = boxes[:, 1::2] * tr.scale_y + tr.pad_y
    assert in_net[:, 0::2].max() <= spec.width + 1e-3 and in_net[:, 1::2].max() <= spec.height + 1e-3
    np.testing.assert_allclose(tr.to_source(in_net), boxes, atol=1e-3)


def test_bad_inputs_are_rejected_with_clear_errors():
    spec = InputSpec(32, 32)
    with pytest.raises(ValueError, match="unsupported encoding.*bgr8"):
        preprocess(np.zeros((4, 4, 3), np.uint8), "yuv422", spec)
    with pytest.raises(ValueError, match="HxWx4"):
        preprocess(np.zeros((4, 4, 3), np.uint8), "bgra8", spec)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((4, 4, 3), np.float32), "bgr8", spec)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("norm", [(1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
                                  (1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_float32_path_equals_the_per_value_table(layout, norm):
    """The whole-image float32 arithmetic gives exactly the table's (v * scale - mean) / std."""
    import dataclasses

    from trt_infer_ros.pipeline.preprocess import _lookup_tables, _to_uint8_canvas
    scale, mean, std = norm
    spec = dataclasses.replace(InputSpec(width=64, height=48, layout=layout), scale=scale,
                               mean=mean, std=std, dtype="float32")
    image = np.random.default_rng(3).integers(0, 256, (30, 50, 3), np.uint8)
    tensor, _ = preprocess(image, "bgr8", spec)
    canvas, _ = _to_uint8_canvas(image, "bgr8", spec)
    tables = _lookup_tables(spec)
    want = np.stack([tables[c][canvas[:, :, c]] for c in range(3)], -1)
    want = want[None] if layout == "NHWC" else want.transpose(2, 0, 1)[None]
    np.testing.assert_array_equal(tensor, want)


REUSED_SPECS = SPECS + [
    InputSpec(48, 48, layout="NHWC", scale=1.0, pad_value=0),               # plain cast, NHWC
    InputSpec(48, 48, scale=1.0, pad_value=5),                              # plain cast, NCHW
    InputSpec(48, 40, layout="NHWC", scale=1 / 255, mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225), pad_value=3, pad_placement="top_left"),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("spec", REUSED_SPECS,
                         ids=lambda s: f"{s.width}x{s.height}{s.layout}{s.color}{s.dtype}{s.scale}")
def test_input_buffer_equals_a_fresh_tensor_frame_after_frame(encoding, spec):
    """The reused tensor holds exactly preprocess()'s values, also when the image's place in
    the input moves (landscape, portrait, back) and its padding bands must be rewritten."""
    from trt_infer_ros.pipeline.preprocess import InputBuffer
    buffer = InputBuffer(spec)
    shapes = [(45, 70), (70, 45), (45, 70), (45, 70), (spec.height, spec.width), (70, 45)]
    for seed, (h, w) in enumerate(shapes):
        image = random_image(encoding, h, w, seed)
        tensor, transform = buffer(image, encoding)
        want, want_transform = preprocess(image, encoding, spec)
        assert tensor is buffer.tensor and transform == want_transform
        assert tensor.tobytes() == want.tobytes()


def test_identity_normalisation_is_a_plain_cast_of_the_pixels():
    image = random_image("rgb8", 48, 48)
    tensor, _ = preprocess(image, "rgb8", InputSpec(48, 48, layout="NHWC", scale=1.0))
    assert tensor.dtype == np.float32
    assert tensor.tobytes() == image[None].astype(np.float32).tobytes()


def test_conversion_still_lands_in_the_tensor_when_cv2_returns_a_copy(monkeypatch):
    """A cv2 that does not write into the tensor's view (it returns a new array instead)."""
    import trt_infer_ros.pipeline.preprocess as preprocess_module
    real_lut = cv2.LUT
    monkeypatch.setattr(preprocess_module.cv2, "LUT",
                        lambda src, table, dst=None: real_lut(src, table))
    spec = InputSpec(64, 48)
    image = random_image("bgr8")
    tensor, _ = preprocess(image, "bgr8", spec)
    np.testing.assert_allclose(tensor.astype(np.float64), reference(image, "bgr8", spec),
                               atol=1e-5, rtol=1e-6)
