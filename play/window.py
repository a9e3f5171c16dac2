"""A pygame window for playing Breakout with the keyboard: Left/Right move, Space fires, P pauses,
R resets, Esc or Q quits. Shows the frame scaled up, with score, lives and frame rate below it."""

from __future__ import annotations

import os
import sys

import numpy as np

from worldmodel.breakout import FIRE, LEFT, NOOP, RIGHT
from worldmodel.errors import MissingDependencyError, NoDisplayError

HUD_HEIGHT = 28


def _has_display() -> bool:
    if os.environ.get("SDL_VIDEODRIVER") in ("dummy", "offscreen"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class GameWindow:
    """Owns the pygame window; `show` draws a frame, `poll` returns the player's intent."""

    def __init__(self, title: str, frame_shape: tuple[int, int] = (210, 160), scale: int = 3):
        if scale < 1:
            raise ValueError(f"--scale must be at least 1, got {scale}")
        if not _has_display():
            raise NoDisplayError("no display found (DISPLAY is not set): `play` needs a screen")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise MissingDependencyError("pygame is not installed: run `pip install pygame`") from exc
        self.pygame = pygame
        try:
            pygame.display.init()
            pygame.font.init()
            height, width = frame_shape
            self.game_size = (width * scale, height * scale)
            self.screen = pygame.display.set_mode((self.game_size[0], self.game_size[1] + HUD_HEIGHT))
        except pygame.error as exc:
            raise NoDisplayError(f"cannot open a window ({exc}): `play` needs a screen") from None
        pygame.display.set_caption(title)
        self.font = pygame.font.Font(None, 22)
        self.clock = pygame.time.Clock()
        self.paused = False

    def poll(self) -> tuple[int, set[str]]:
        """Return (action from held keys, set of commands among {'quit', 'reset', 'pause', 'switch'})."""
        pygame = self.pygame
        commands: set[str] = set()
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                commands.add("quit")
            elif event.type == pygame.KEYDOWN:
                if event.key in (pygame.K_ESCAPE, pygame.K_q):
                    commands.add("quit")
                elif event.key == pygame.K_r:
                    commands.add("reset")
                elif event.key == pygame.K_p:
                    commands.add("pause")
                    self.paused = not self.paused
                elif event.key == pygame.K_TAB:
                    commands.add("switch")
        keys = pygame.key.get_pressed()
        if keys[pygame.K_SPACE]:
            action = FIRE
        elif keys[pygame.K_RIGHT] and not keys[pygame.K_LEFT]:
            action = RIGHT
        elif keys[pygame.K_LEFT] and not keys[pygame.K_RIGHT]:
            action = LEFT
        else:
            action = NOOP
        return action, commands

    def show(self, frame: np.ndarray, status: str, message: str | None = None) -> None:
        pygame = self.pygame
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self.screen.blit(pygame.transform.scale(surface, self.game_size), (0, 0))
        self.screen.fill((20, 20, 20), (0, self.game_size[1], self.game_size[0], HUD_HEIGHT))
        hud = f"{status}   {self.clock.get_fps():4.1f} fps"
        self.screen.blit(self.font.render(hud, True, (230, 230, 230)), (8, self.game_size[1] + 6))
        if message or self.paused:
            text = self.font.render(message or "PAUSED - P to resume", True, (255, 255, 255), (0, 0, 0))
            self.screen.blit(text, text.get_rect(center=(self.game_size[0] // 2, self.game_size[1] // 2)))
        pygame.display.flip()

    def tick(self, fps: float) -> None:
        self.clock.tick(fps)

    def close(self) -> None:
        self.pygame.display.quit()
