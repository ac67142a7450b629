"""Helpers shared by the tests of this package (no test module imports another)."""

from __future__ import annotations

VERIFIED_IN = (
    '{"type":"a2a.send","agentId":"ruda","ts":1771330358110,"data":{"fromAgent":"ruda",'
    '"toAgent":"main","message":"코드 구현 진행 상황 공유","conversationId":"conv-main-1"}}')
