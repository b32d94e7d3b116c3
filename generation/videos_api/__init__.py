"""The OpenAI-compatible Videos API at `/v1/` (docs/videos-api.md).

Not a copy of Riff beside Riff: a `/v1` video is a Riff generation (its id is the generation's
id) and, once rendered, its Riff video. Everything a generation goes through applies: the
quota and credits, the cameo consent checks (a source video's cameos included), registered IP,
the safety rules, provenance and the watermark. This package only translates: OpenAI's request
and response shapes in, Riff's admission and selectors underneath. API keys authenticate here
(accounts.apikeys) and nowhere else; errors leave in OpenAI's shape
(config.core.openai_errors).
"""
