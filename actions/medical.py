"""Medical information: symptoms, medicines, clinics, appointments, emergencies.

Information only: the texts come from curated files with their sources, every
answer carries a disclaimer, and nothing here gives a diagnosis or a dose.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from typing import Any, Dict, List

from rasa_safe_hybrid import emergency
from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import knowledge
from actions.common import join_list, latest_entity, reset_slots, slot_or_entity, stop_active_loop
from actions.store import get_store
from actions.validation import clean_text, validated_name

logger = logging.getLogger(__name__)

MAX_DATE_CHARS = 100
_DATE_HINT = re.compile(
    r"\d|\b(today|tomorrow|tonight|morning|afternoon|evening|next|this|week|weekend|"
    r"mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|"
    r"sunday|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|january|february|march|"
    r"april|june|july|august|september|october|november|december|asap|soon)\b",
    re.IGNORECASE,
)


class _CuratedInfoAction(Action, ABC):
    """Answers from one curated file, with sources and the medical disclaimer.

    Abstract: subclasses set the file, the slot and the responses, so the
    action server does not register this class.
    """

    file_name: str
    slot: str
    found_response: str
    unknown_response: str
    ask_response: str

    @abstractmethod
    def name(self) -> str:
        """The action's name in the domain."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        term = slot_or_entity(tracker, self.slot)
        if not term:
            dispatcher.utter_message(response=self.ask_response)
            return []
        entry = knowledge.lookup(self.file_name, term)
        if entry is None:
            logger.debug("No curated %s entry for %r.", self.slot, term)
            dispatcher.utter_message(
                response=self.unknown_response,
                terms=join_list(knowledge.terms(self.file_name)),
            )
        else:
            dispatcher.utter_message(
                response=self.found_response, summary=entry.text, sources="; ".join(entry.sources)
            )
        dispatcher.utter_message(response="utter_medical_disclaimer")
        return reset_slots(self.slot)


class ActionSymptomInfo(_CuratedInfoAction):
    """General information on a symptom."""

    file_name = knowledge.SYMPTOMS_FILE
    slot = "symptom"
    found_response = "utter_symptom_info"
    unknown_response = "utter_unknown_symptom"
    ask_response = "utter_ask_symptom"

    def name(self) -> str:
        return "action_symptom_info"


class ActionMedicationInfo(_CuratedInfoAction):
    """General information on a medicine (never a dose)."""

    file_name = knowledge.MEDICATIONS_FILE
    slot = "medication"
    found_response = "utter_medication_info"
    unknown_response = "utter_unknown_medication"
    ask_response = "utter_ask_medication"

    def name(self) -> str:
        return "action_medication_info"


class ActionFindClinic(Action):
    """Lists the clinics for a city and/or specialty from the store."""

    def name(self) -> str:
        return "action_find_clinic"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        store = get_store()
        city = knowledge.canonical(
            slot_or_entity(tracker, "city"), store.clinic_values("city"), "city"
        )
        specialty = knowledge.canonical(
            slot_or_entity(tracker, "specialty"), store.clinic_values("specialty"), "specialty"
        )
        if city is None and specialty is None:
            dispatcher.utter_message(response="utter_ask_city")
            return []
        clinics = store.find_clinics(city=city, specialty=specialty)
        if not clinics:
            dispatcher.utter_message(
                response="utter_no_clinics",
                specialty=specialty or "matching",
                city=(city or "any city").title(),
            )
        else:
            where = "".join(
                [f" for {specialty}" if specialty else "", f" in {city.title()}" if city else ""]
            )
            listing = "; ".join(f"{c.name}, {c.address}, phone {c.phone}" for c in clinics)
            dispatcher.utter_message(response="utter_clinics_found", where=where, clinics=listing)
        return [SlotSet("city", city), SlotSet("specialty", specialty)]


class ValidateAppointmentForm(FormValidationAction):
    """Checks specialty, city, preferred date and patient name."""

    def name(self) -> str:
        return "validate_appointment_form"

    def validate_specialty(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        known = get_store().clinic_values("specialty")
        specialty = knowledge.canonical(slot_value, known, "specialty")
        if specialty is None:
            dispatcher.utter_message(response="utter_ask_specialty")
        return {"specialty": specialty}

    def validate_city(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        known = get_store().clinic_values("city")
        city = knowledge.canonical(slot_value, known, "city")
        if city is None:
            dispatcher.utter_message(response="utter_ask_city")
        return {"city": city}

    def validate_appointment_date(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        text = clean_text(slot_value, max_chars=MAX_DATE_CHARS)
        if text is None or not _DATE_HINT.search(text):
            dispatcher.utter_message(response="utter_invalid_date")
            return {"appointment_date": None}
        return {"appointment_date": text}

    def validate_patient_name(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> Dict[str, Any]:
        return validated_name("patient_name", slot_value, dispatcher)


class ActionSubmitAppointment(Action):
    """Records the appointment request and gives its reference."""

    def name(self) -> str:
        return "action_submit_appointment"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        specialty, city = tracker.get_slot("specialty"), tracker.get_slot("city")
        date, name = tracker.get_slot("appointment_date"), tracker.get_slot("patient_name")
        reference = get_store().create_appointment(specialty, city, date, name, tracker.sender_id)
        logger.info("Appointment request %s recorded.", reference)
        dispatcher.utter_message(
            response="utter_appointment_created",
            specialty=specialty,
            city=city.title(),
            appointment_date=date,
            reference=reference,
        )
        return reset_slots("appointment_date", "patient_name")


class ActionEmergencyEscalation(Action):
    """Escalates an emergency first: stops any form and gives emergency numbers."""

    def name(self) -> str:
        return "action_emergency_escalation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[EventType]:
        kind = latest_entity(tracker, emergency.ENTITY)
        response = emergency.Responses().escalation(kind)
        logger.warning("Emergency escalation (%s) for %s.", kind or "medical", tracker.sender_id)
        dispatcher.utter_message(response=response)
        return stop_active_loop(tracker) + [SlotSet(emergency.TRIAGE_SLOT, None)]
