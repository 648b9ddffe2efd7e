"""What every detecting node publishes, in one place: detector_node and head_node share it.

Topics (relative to the node):
  ~/detections   vision_msgs/Detection2DArray  reliable, depth 10: every result counts
  ~/label_info   vision_msgs/LabelInfo         class map and score threshold, at start and again
                                               when the threshold is tuned; reliable + transient
                                               local so a subscriber that joins late still gets it
  ~/image        sensor_msgs/Image             overlay, reliable depth 1, drawn only while
                                               someone subscribes
  ~/masks        sensor_msgs/Image             segmentation models: mono16 instance ids, 0 for
                                               background and k for the detection whose id is
                                               "k"; source-image size, the image's header;
                                               reliable depth 1, drawn only while subscribed
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from trt_infer_ros.models.spec import Detections
from trt_infer_ros.pipeline.annotate import draw_detections, to_bgr
from trt_infer_ros.ros.detection_messages import to_detection_array, to_label_info
from trt_infer_ros.ros.image_conversion import array_to_image, mono16_to_image
from trt_infer_ros.ros.qos import image_qos

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
MAX_UNNAMED_NOTED = 1000      # a model emitting garbage ids must not grow the set without end


class DetectionOutput:
    """The publishers of one detecting node and how one frame's result goes out."""

    def __init__(self, node, class_names: Sequence[str], score_threshold: float) -> None:
        self.class_names = list(class_names)
        self.unnamed_class_ids: set[int] = set()     # ids the model emitted beyond the names
        self._logger = node.get_logger()
        self._node_context = node.context
        self._detections_pub = node.create_publisher(Detection2DArray, "~/detections", 10)
        self._clock = node.get_clock()
        self._label_info_pub = node.create_publisher(LabelInfo, "~/label_info", LATCHED)
        self._publish_label_info(score_threshold)
        self._overlay_pub = node.create_publisher(Image, "~/image", image_qos("reliable", 1))
        self._masks_pub = node.create_publisher(Image, "~/masks", image_qos("reliable", 1))

    def _publish_label_info(self, score_threshold: float) -> None:
        self._label_info_pub.publish(to_label_info(self.class_names, score_threshold,
                                                   self._clock.now().to_msg()))

    def settings_changed(self, updates: dict) -> None:
        """Live tuning accepted `updates`: ~/label_info states the threshold now in force."""
        if "score_threshold" in updates:
            self._publish_label_info(updates["score_threshold"])

    @property
    def wants_overlay(self) -> bool:
        """Whether anyone subscribes to the overlay (drawing it costs milliseconds)."""
        return self._overlay_pub.get_subscription_count() > 0

    def publish(self, detections: Detections, header, image: Optional[np.ndarray] = None,
                encoding: str = "bgr8") -> None:
        """One frame's detections (source-image pixels) with the image's header; the overlay
        too when someone subscribes and the image is given."""
        self._note_unnamed(detections.class_ids)
        self._detections_pub.publish(to_detection_array(detections, header, self.class_names))
        if detections.masks is not None and self._masks_pub.get_subscription_count() > 0:
            ids = detections.masks.id_image()            # rendered only for a subscriber
            self._masks_pub.publish(mono16_to_image(ids, header))
        if image is not None and self.wants_overlay:
            overlay = draw_detections(to_bgr(image, encoding), detections, self.class_names)
            self._overlay_pub.publish(array_to_image(overlay, "bgr8", header))

    def _note_unnamed(self, class_ids) -> None:
        """Say once per id when the model emits a class the names do not cover (a labels file
        shorter than a model whose class count the graph does not tell, e.g. CenterNet)."""
        if len(self.unnamed_class_ids) >= MAX_UNNAMED_NOTED:
            return
        new = {int(c) for c in np.asarray(class_ids).tolist()
               if not 0 <= c < len(self.class_names)} - self.unnamed_class_ids
        if new:
            self.unnamed_class_ids |= new
            if not self._node_context.ok():
                return      # shutting down: the log would not reach /rosout
            self._logger.warning(
                f"the model emitted class ids {sorted(new)} but has only "
                f"{len(self.class_names)} class names (check the `labels` file); these "
                f"detections carry the id as their class label")
