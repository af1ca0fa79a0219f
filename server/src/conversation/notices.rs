//! The system notices a visitor reads in the timeline ("Ana joined the conversation."), in the
//! visitor's language: English, German, French or Spanish (the widget's languages), chosen from
//! the conversation's locale; any other locale gets English.

use crate::model::Notices;
use nexus_shared::{HandoffReason, Transition};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    De,
    Fr,
    Es,
}

fn lang(locale: Option<&str>) -> Lang {
    let primary = locale
        .unwrap_or_default()
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match primary.as_str() {
        "de" => Lang::De,
        "fr" => Lang::Fr,
        "es" => Lang::Es,
        _ => Lang::En,
    }
}

/// The renderer the services give the store with every [`Op`](crate::model::Op).
pub const NOTICES: Notices = Notices(transition);

/// The notice recorded with a state change (`{}`: the agent's name where there is one).
pub fn transition(transition: &Transition, locale: Option<&str>) -> String {
    let l = lang(locale);
    let name = |text: &str, name: &str| text.replace("{}", name);
    match transition {
        Transition::Escalated { reason } => escalation(reason, locale),
        Transition::TakenOver { agent } => name(
            match l {
                Lang::En => "{} joined the conversation.",
                Lang::De => "{} ist dem Gespräch beigetreten.",
                Lang::Fr => "{} a rejoint la conversation.",
                Lang::Es => "{} se ha unido a la conversación.",
            },
            &agent.name,
        ),
        Transition::Transferred { to, .. } => name(
            match l {
                Lang::En => "{} took over the conversation.",
                Lang::De => "{} hat das Gespräch übernommen.",
                Lang::Fr => "{} a repris la conversation.",
                Lang::Es => "{} ha tomado la conversación.",
            },
            &to.name,
        ),
        Transition::HandedBack { .. } => match l {
            Lang::En => "You're back with the assistant.",
            Lang::De => "Sie sind wieder beim Assistenten.",
            Lang::Fr => "Vous êtes de retour avec l'assistant.",
            Lang::Es => "Vuelves a hablar con el asistente.",
        }
        .into(),
        Transition::Resolved { .. } => match l {
            Lang::En => "Conversation resolved.",
            Lang::De => "Gespräch abgeschlossen.",
            Lang::Fr => "Conversation résolue.",
            Lang::Es => "Conversación resuelta.",
        }
        .into(),
        Transition::Reopened { .. } => match l {
            Lang::En => "Conversation reopened.",
            Lang::De => "Gespräch wieder geöffnet.",
            Lang::Fr => "Conversation rouverte.",
            Lang::Es => "Conversación reabierta.",
        }
        .into(),
        _ => match l {
            Lang::En => "Conversation updated.",
            Lang::De => "Gespräch aktualisiert.",
            Lang::Fr => "Conversation mise à jour.",
            Lang::Es => "Conversación actualizada.",
        }
        .into(),
    }
}

/// The notice recorded when a conversation is handed to a person, saying why in plain words.
pub fn escalation(reason: &HandoffReason, locale: Option<&str>) -> String {
    let l = lang(locale);
    match reason {
        HandoffReason::VisitorAsked => match l {
            Lang::En => "You asked for a person. Someone from the team will join you here.",
            Lang::De => "Sie möchten mit einer Person sprechen. Jemand aus dem Team meldet sich hier.",
            Lang::Fr => "Vous avez demandé une personne. Quelqu'un de l'équipe vous rejoint ici.",
            Lang::Es => "Has pedido hablar con una persona. Alguien del equipo se unirá aquí.",
        },
        HandoffReason::LowConfidence => match l {
            Lang::En => "I'm not sure about this one, so I'm bringing in a person from the team.",
            Lang::De => "Da bin ich mir nicht sicher, deshalb hole ich eine Person aus dem Team dazu.",
            Lang::Fr => "Je ne suis pas sûr de la réponse, je fais donc appel à une personne de l'équipe.",
            Lang::Es => "No estoy seguro de esto, así que llamo a una persona del equipo.",
        },
        HandoffReason::OutOfScope => match l {
            Lang::En => {
                "That's outside what I can answer, so I'm passing you to a person from the team."
            }
            Lang::De => {
                "Das kann ich nicht beantworten, deshalb übergebe ich an eine Person aus dem Team."
            }
            Lang::Fr => {
                "Je ne peux pas répondre à cela, je vous passe à une personne de l'équipe."
            }
            Lang::Es => "Eso está fuera de lo que puedo responder; te paso con una persona del equipo.",
        },
        HandoffReason::Sensitive { .. } => match l {
            Lang::En => "This needs a person from the team, so I'm passing your conversation on.",
            Lang::De => "Das sollte eine Person aus dem Team klären, deshalb gebe ich Ihr Gespräch weiter.",
            Lang::Fr => "Cela demande une personne de l'équipe, je transmets donc votre conversation.",
            Lang::Es => "Esto necesita a una persona del equipo, así que paso tu conversación.",
        },
        HandoffReason::Frustration | HandoffReason::RepeatedFailure => match l {
            Lang::En => "Sorry I couldn't help. I'm bringing in a person from the team.",
            Lang::De => "Entschuldigung, dass ich nicht helfen konnte. Ich hole eine Person aus dem Team dazu.",
            Lang::Fr => "Désolé de ne pas avoir pu vous aider. Je fais appel à une personne de l'équipe.",
            Lang::Es => "Siento no haber podido ayudar. Llamo a una persona del equipo.",
        },
        HandoffReason::EngineError => match l {
            Lang::En => {
                "Something went wrong on my side. A person from the team will answer you here; \
                 nothing you wrote is lost."
            }
            Lang::De => {
                "Bei mir ist etwas schiefgelaufen. Eine Person aus dem Team antwortet Ihnen hier; \
                 nichts von dem, was Sie geschrieben haben, geht verloren."
            }
            Lang::Fr => {
                "Un problème est survenu de mon côté. Une personne de l'équipe vous répondra ici ; \
                 rien de ce que vous avez écrit n'est perdu."
            }
            Lang::Es => {
                "Algo ha fallado por mi parte. Una persona del equipo te responderá aquí; no se \
                 pierde nada de lo que escribiste."
            }
        },
        HandoffReason::EngineBusy => match l {
            Lang::En => {
                "I'm busy with many questions right now, so a person from the team will answer \
                 you here; nothing you wrote is lost."
            }
            Lang::De => {
                "Ich bin gerade mit vielen Fragen beschäftigt, deshalb antwortet Ihnen hier eine \
                 Person aus dem Team; nichts von dem, was Sie geschrieben haben, geht verloren."
            }
            Lang::Fr => {
                "Je suis très sollicité en ce moment : une personne de l'équipe vous répondra ici ; \
                 rien de ce que vous avez écrit n'est perdu."
            }
            Lang::Es => {
                "Ahora mismo atiendo muchas preguntas, así que una persona del equipo te \
                 responderá aquí; no se pierde nada de lo que escribiste."
            }
        },
        _ => match l {
            Lang::En => "A person from the team will answer you here.",
            Lang::De => "Eine Person aus dem Team antwortet Ihnen hier.",
            Lang::Fr => "Une personne de l'équipe vous répondra ici.",
            Lang::Es => "Una persona del equipo te responderá aquí.",
        },
    }
    .into()
}

#[cfg(test)]
mod tests {
    use nexus_shared::AgentRef;
    use uuid::Uuid;

    use super::*;

    fn ana() -> AgentRef {
        AgentRef {
            id: Uuid::nil(),
            name: "Ana".into(),
        }
    }

    #[test]
    fn notices_follow_the_visitors_language() {
        let back = Transition::HandedBack { agent: ana() };
        assert_eq!(transition(&back, None), "You're back with the assistant.");
        assert_eq!(
            transition(&back, Some("de-DE")),
            "Sie sind wieder beim Assistenten."
        );
        assert_eq!(
            transition(&back, Some("fr")),
            "Vous êtes de retour avec l'assistant."
        );
        assert_eq!(
            transition(&back, Some("es_MX")),
            "Vuelves a hablar con el asistente."
        );
        assert_eq!(
            transition(&back, Some("ja")),
            "You're back with the assistant."
        );
        let joined = Transition::TakenOver { agent: ana() };
        assert_eq!(
            transition(&joined, Some("de")),
            "Ana ist dem Gespräch beigetreten."
        );
        assert!(escalation(&HandoffReason::VisitorAsked, Some("es")).starts_with("Has pedido"));
        assert_eq!(
            transition(
                &Transition::Escalated {
                    reason: HandoffReason::VisitorAsked
                },
                Some("fr")
            ),
            escalation(&HandoffReason::VisitorAsked, Some("fr"))
        );
    }
}
