"""The status bar: a busy indicator, the device and the model, and timed messages."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from .messages import EngineInfo


class StatusBar(QStatusBar):
    def __init__(self) -> None:
        super().__init__()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator while the model / photo load
        self.progress.setMaximumWidth(140)
        self.progress.setVisible(False)
        self.device_label = QLabel("Device: –")
        self.model_label = QLabel("Model: loading…")
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.device_label)
        self.addPermanentWidget(self.model_label)

    def busy(self, text: str) -> None:
        self.progress.setVisible(True)
        self.showMessage(text)

    def idle(self, text: str = "", timeout_ms: int = 4000) -> None:
        self.progress.setVisible(False)
        if text:
            self.showMessage(text, timeout_ms)
        else:
            self.clearMessage()

    def show_model(self, info: EngineInfo) -> None:
        self.device_label.setText(f"Device: {info.device} ({info.precision})")
        self.model_label.setText(f"Model: {info.model_name} · {info.image_size} px · {info.latent_dim} latents")

    def show_no_model(self, message: str) -> None:
        self.model_label.setText("Model: none")
        self.device_label.setText("Device: –")
        self.showMessage(f"No model: {message}")
