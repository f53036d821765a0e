"""Evaluation: the field's reconstruction, pose-control and identity metrics over the engine and the tracker."""
