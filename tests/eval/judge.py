"""Optional: a model answers each question from the retrieved context, and an LLM judge grades
the answer CORRECT or WRONG against the gold answer.

The judge reproduces the setup of mem0's published LoCoMo evaluation (github.com/mem0ai/mem0,
`evaluation/metrics/llm_judge.py`): its ACCURACY_PROMPT, model gpt-4o-mini, temperature 0, a JSON
object answer with the key "label", and category 5 (adversarial) left out of the judged set.
The answer step follows the same repository's RAG baseline (`evaluation/src/rag.py`): its system
prompt and "Question / Context / Short answer" template, temperature 0. The same answer model,
prompt and judge are used for Synapse's context and for the BM25 baseline's.
"""

import asyncio
import json
import re
from dataclasses import dataclass

from openai import AsyncOpenAI

DEFAULT_MODEL = "gpt-4o-mini"
JUDGED_CATEGORIES = frozenset({1, 2, 3, 4})

ANSWER_SYSTEM = (
    "You are a helpful assistant that can answer questions based on the provided context."
    "If the question involves timing, use the conversation date for reference."
    "Provide the shortest possible answer."
    "Use words directly from the conversation when possible."
    "Avoid using subjects in your answer."
)

ANSWER_TEMPLATE = """
# Question: 
{question}

# Context: 
{context}

# Short answer:
"""  # noqa: W291 (the published template's trailing spaces, kept)

ACCURACY_PROMPT = """
Your task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:
    (1) a question (posed by one user to another user), 
    (2) a ’gold’ (ground truth) answer, 
    (3) a generated answer
which you will score as CORRECT/WRONG.

The point of the question is to ask about something one user should know about the other user based on their prior conversations.
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. 

For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like "last Tuesday" or "next month"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., "May 7th" vs "7 May"), consider it CORRECT if it's the same date.

Now it's time for the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. 
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.

Just return the label CORRECT or WRONG in a json format with the key as "label".
"""  # noqa: E501, W291 (verbatim wording of the published judge prompt)

_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def parse_label(content: str) -> bool:
    """True for CORRECT. JSON first ({"label": ...}, possibly fenced), then the bare word."""
    match = _JSON_OBJECT.search(content or "")
    if match:
        try:
            label = str(json.loads(match.group(0)).get("label", ""))
            return label.strip().upper() == "CORRECT"
        except (json.JSONDecodeError, AttributeError):
            pass
    upper = (content or "").upper()
    return "CORRECT" in upper and "WRONG" not in upper


@dataclass(frozen=True)
class JudgeConfig:
    api_key: str
    base_url: str | None
    answer_model: str = DEFAULT_MODEL
    judge_model: str = DEFAULT_MODEL
    concurrency: int = 8


class Judge:
    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self._client = AsyncOpenAI(
            api_key=config.api_key, base_url=config.base_url, timeout=60.0, max_retries=3
        )
        self._gate = asyncio.Semaphore(config.concurrency)

    async def aclose(self) -> None:
        await self._client.close()

    async def answer(self, question: str, context: str) -> str:
        async with self._gate:
            response = await self._client.chat.completions.create(
                model=self.config.answer_model,
                messages=[
                    {"role": "system", "content": ANSWER_SYSTEM},
                    {
                        "role": "user",
                        "content": ANSWER_TEMPLATE.format(question=question, context=context),
                    },
                ],
                temperature=0,
            )
        return (response.choices[0].message.content or "").strip()

    async def grade(self, question: str, gold_answer: str, generated_answer: str) -> bool:
        prompt = ACCURACY_PROMPT.format(
            question=question, gold_answer=gold_answer, generated_answer=generated_answer
        )
        async with self._gate:
            response = await self._client.chat.completions.create(
                model=self.config.judge_model,
                messages=[{"role": "user", "content": prompt}],
                response_format={"type": "json_object"},
                temperature=0.0,
            )
        return parse_label(response.choices[0].message.content or "")
