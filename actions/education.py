"""Education: course search, enrolment, glossary explanations, quiz, study tips."""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import knowledge
from actions.common import join_list, reset_slots, slot_or_entity
from actions.store import Course, get_store
from actions.validation import normalise_email, validated_name

LLM_ACTION = "action_llm_response"

logger = logging.getLogger(__name__)

QUESTIONS_PER_QUIZ = 3


def _describe(course: Course) -> str:
    return f"{course.title} ({course.code}, {course.weeks} weeks, {course.level})"


class ActionSearchCourses(Action):
    """Lists the catalogue's courses on the requested topic (or all of them)."""

    def name(self) -> str:
        return "action_search_courses"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        store = get_store()
        topic = slot_or_entity(tracker, "topic")
        if topic:
            courses = store.search_courses(topic)
            if not courses:
                dispatcher.utter_message(response="utter_no_courses", topic=topic)
                return reset_slots("topic")
        else:
            topic, courses = "all topics", store.list_courses()
        dispatcher.utter_message(
            response="utter_courses_found",
            topic=topic,
            courses="; ".join(_describe(c) for c in courses),
        )
        return reset_slots("topic")


class ValidateEnrollForm(FormValidationAction):
    """Checks the course, the student's name and email of an enrolment."""

    def name(self) -> str:
        return "validate_enroll_form"

    def validate_course(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        store = get_store()
        course = store.find_course(slot_value) if isinstance(slot_value, str) else None
        if course is None:
            titles = [f"{c.title} ({c.code})" for c in store.list_courses()]
            dispatcher.utter_message(response="utter_unknown_course", courses="; ".join(titles))
            return {"course": None}
        return {"course": course.code}

    def validate_student_name(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        return validated_name("student_name", slot_value, dispatcher)

    def validate_email(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        email = normalise_email(slot_value)
        if email is None:
            dispatcher.utter_message(response="utter_invalid_email")
        return {"email": email}


class ActionSubmitEnrolment(Action):
    """Records the enrolment and confirms it."""

    def name(self) -> str:
        return "action_submit_enrolment"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        store = get_store()
        code = tracker.get_slot("course")
        course = store.find_course(code)
        name, email = tracker.get_slot("student_name"), tracker.get_slot("email")
        reference = store.create_enrolment(code, name, email, tracker.sender_id)
        logger.info("Enrolment %s recorded for course %s.", reference, code)
        dispatcher.utter_message(
            response="utter_enrolment_created",
            student_name=name,
            course=course.title if course else code,
            reference=reference,
            email=email,
        )
        return reset_slots("course")


class ActionExplainConcept(Action):
    """Explains a concept from the curated glossary."""

    def name(self) -> str:
        return "action_explain_concept"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        entry = knowledge.lookup(knowledge.GLOSSARY_FILE, slot_or_entity(tracker, "concept"))
        if entry is None and LLM_ACTION in (domain.get("actions") or []):
            # not a glossary term: the LLM action answers from the whole knowledge (the reference
            # corpora too) with its source, or says it does not know
            logger.info("Concept %r is not in the glossary: the LLM action answers from the knowledge.",
                        slot_or_entity(tracker, "concept"))
            return reset_slots("concept") + [FollowupAction(LLM_ACTION)]
        if entry is None:
            terms = join_list(knowledge.terms(knowledge.GLOSSARY_FILE))
            dispatcher.utter_message(response="utter_unknown_concept", terms=terms)
        else:
            dispatcher.utter_message(
                response="utter_concept", summary=entry.text, source="; ".join(entry.sources)
            )
        return reset_slots("concept")


class ActionStartQuiz(Action):
    """Resets the quiz state and introduces the quiz."""

    def name(self) -> str:
        return "action_start_quiz"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        total = min(QUESTIONS_PER_QUIZ, len(knowledge.quiz_questions()))
        dispatcher.utter_message(response="utter_quiz_intro", count=total)
        return [SlotSet("quiz_index", 0.0), SlotSet("quiz_score", 0.0), SlotSet("quiz_answer", None)]


class ActionAskQuizAnswer(Action):
    """Asks the quiz question the user is at (the quiz form's ask action)."""

    def name(self) -> str:
        return "action_ask_quiz_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        questions = knowledge.quiz_questions()
        total = min(QUESTIONS_PER_QUIZ, len(questions))
        index = min(int(tracker.get_slot("quiz_index") or 0), total - 1)
        dispatcher.utter_message(text=f"Question {index + 1}/{total}: {questions[index].question}")
        return []


class ValidateQuizForm(FormValidationAction):
    """Marks the answer, keeps the score and moves to the next question."""

    def name(self) -> str:
        return "validate_quiz_form"

    def validate_quiz_answer(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        if slot_value is None:  # cleared by action_start_quiz, not an answer
            return {"quiz_answer": None}
        questions = knowledge.quiz_questions()
        total = min(QUESTIONS_PER_QUIZ, len(questions))
        index = int(tracker.get_slot("quiz_index") or 0)
        score = float(tracker.get_slot("quiz_score") or 0)
        if index >= total:  # a stale quiz: treat as finished
            return {"quiz_answer": str(slot_value)}
        question = questions[index]
        if knowledge.normalise(str(slot_value)) in question.answers:
            score += 1
            dispatcher.utter_message(response="utter_quiz_correct")
        else:
            dispatcher.utter_message(response="utter_quiz_wrong", answer=question.answers[0])
        index += 1
        finished = index >= total
        return {
            "quiz_answer": str(slot_value) if finished else None,
            "quiz_index": float(index),
            "quiz_score": score,
        }


class ActionQuizResult(Action):
    """Tells the final score and clears the quiz state."""

    def name(self) -> str:
        return "action_quiz_result"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        total = min(QUESTIONS_PER_QUIZ, len(knowledge.quiz_questions()))
        score = int(tracker.get_slot("quiz_score") or 0)
        dispatcher.utter_message(response="utter_quiz_result", score=score, total=total)
        return [SlotSet("quiz_answer", None), SlotSet("quiz_index", 0.0)]
