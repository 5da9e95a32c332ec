"""Integrations with outside tools: ultralytics (YOLO), FiftyOne and the YOLO dataset format."""
