"""Placeholder: organisations manage their own API keys over HTTP (filled in by issue 21)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
