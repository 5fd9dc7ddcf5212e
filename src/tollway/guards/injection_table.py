"""The prompt-injection signals: what each one looks for and how much it weighs.

How a signal is written (literals, weights, capped repeats) is in
``injection_signals.py``; this module is only the table, grouped by what the signals
look for.
"""

from __future__ import annotations

from tollway.guards.injection_signals import Signal, signal

# What earlier instructions are called, and words that point back at them.
_RULES = (
    r"(?:instructions?|instructs|directions?|directives?|rules?|guidelines?|prompts?|commands?"
    r"|orders?|context|tasks?|assignments?|programming|constraints?|restrictions?|polic(?:y|ies)"
    r"|guardrails?|filters?|safeguards?|system messages?|requests?)"
)
_BACK = (
    r"(?:previous|prior|preceding|above|earlier|former|original|initial|foregoing|your|system"
    r"|old|given|vorherigen|bisherigen)"
)
_ANY = r"(?:all|any|every|these|those)"
_DROP = (
    r"(?:ignore|ignoring|disregard|disregarding|forget|override|overriding|bypass|abandon|drop"
    r"|discard|neglect|set aside|put aside|leave behind|igmre|ingore|ignroe)"
)
_DROP_STARTS = (
    "ignor|disregard|forget|overrid|bypass|abandon|drop|discard|neglect|set aside|put aside"
    "|leave behind|igmre|ingore|ignroe"
)
# What a defensive system prompt says: "ignore any instructions *contained in* the text".
_NOT_DEFENSIVE = (
    r"(?!\s+(?:that (?:may |might )?(?:appear|be|are)\s+)?(?:contained|embedded|found|included"
    r"|hidden|appearing|inside|within|in (?:the|this|that|any|these|those|a|an|retrieved|user)"
    r"\b))"
)
_W = r"(?:[\w'-]+[\s,]+)"  # one word and the space after it

SIGNALS: tuple[Signal, ...] = (
    # "Ignore all previous instructions", "disregard your rules", "forget the above task".
    signal(
        "override",
        0.93,
        rf"{_DROP}\s+{_W}{{0,3}}?{_BACK}\b[\s,]*{_W}{{0,3}}?{_RULES}\b",
        _DROP_STARTS,
    ),
    signal(
        "override_any",
        0.9,
        rf"{_DROP}\s+{_ANY}\s+{_W}{{0,2}}?{_RULES}\b{_NOT_DEFENSIVE}",
        _DROP_STARTS,
    ),
    # "Forget everything before that", "ignore what I said before".
    signal(
        "forget_everything",
        0.9,
        rf"{_DROP}\s+(?:about\s+)?(?:everything|all(?: of)? (?:that|this)|what (?:i|you|we) "
        rf"(?:said|told|wrote|discussed|were told)|anything)\b[\s\w,]{{0,30}}?\b(?:before|above|"
        rf"previously|so far|earlier|until now|you know|you were told|we (?:talked|discussed))",
        _DROP_STARTS,
    ),
    signal(
        "drop_and_say",
        0.9,
        rf"{_DROP}\s+(?:about\s+)?(?:everything|all|it all|this|that|the (?:question|text))\s+"
        rf"(?:and|but|&)\s+(?:\w+\s+){{0,2}}?(?:output|say|print|write|tell|respond|answer|repeat"
        rf"|reply|just)\b",
        _DROP_STARTS,
    ),
    signal(
        "forget_all",
        0.7,
        rf"{_DROP}\s+(?:about\s+)?(?:everything|all)\b(?!\s+(?:about|the)\b)",
        _DROP_STARTS,
    ),
    # Other languages (deepset's corpus mixes English and German).
    signal(
        "override_de",
        0.93,
        r"(?:ignorier\w*|vergiss|vergessen sie|missachte\w*|h[öo]re? nicht auf|abweichend zu)\s+"
        r"(?:\w+\s+){0,3}?(?:alle\w*|vorherige\w*|bisherige\w*|obige\w*|zuvor|davor"
        r"|vorangegangene\w*)\b",
        "ignorier|vergiss|vergessen sie|missachte|hör|hor|abweichend zu",
    ),
    # German puts the verb last: "Die obigen Ausführungen ignorieren".
    signal(
        "override_de_last",
        0.9,
        r"(?:alle\w*|obige\w*|vorherige\w*|bisherige\w*|vorangegangene\w*)\s+(?:\w+\s+){0,3}?"
        r"(?:ignorieren|vergessen|missachten|aus dem kopf|hinter sich)",
        "alle|obige|vorherige|bisherige|vorangegangene",
        "ignorieren|vergessen|missachten|aus dem kopf|hinter sich",
    ),
    signal(
        "forget_de",
        0.85,
        r"(?:vergiss|vergessen sie|ignoriere|ignorieren sie)\s+(?:\w+\s+)?(?:alles|"
        r"anweisungen|aufgaben|instruktionen|regeln)\b",
        "vergiss|vergessen sie|ignoriere",
    ),
    signal(
        "override_romance",
        0.93,
        r"(?:olvida|olvide|ignora|ignore[sz]?|oublie[sz]?|dimentica)\s+(?:\w+\s+){0,2}?"
        r"(?:instrucciones|indicaciones|(?:les|vos|tes|des) instructions|consignes|istruzioni"
        r"|reglas|r[èe]gles|todo|tout)\b",
        "olvid|ignor|oubli|dimentica",
    ),
    signal(
        "override_other",
        0.9,
        r"(?:zaboravi (?:sve )?(?:instrukcije|upute)|(?:забудь|забудьте|игнорируй|игнорируйте)"
        r"\w* (?:все |всё )?(?:инструкции|указания|правила|предыдущие)|olvidar todo|dimentica tutto"
        r"|esque[çc]a (?:todas )?(?:as )?instru[çc][õo]es|ignore todas as instru[çc][õo]es"
        r"|negeer (?:alle )?(?:vorige )?instructies|zignoruj (?:wszystkie )?(?:poprzednie )?"
        r"instrukcje|önceki talimatlar\u0131 (?:yok say|unut)|忽略(?:之前|以上|所有)"
        r"|前の指示を無視)",
        (
            "zaboravi|забуд|игнорир|olvidar todo|dimentica tutto|esque|ignore todas|negeer|zignoruj"
            "|önceki|忽略|前の指示"
        ),
        word_start=False,
    ),
    # "All previous information is irrelevant."
    signal(
        "previous_void",
        0.85,
        r"(?:previous|prior|above|earlier|vorherigen|bisherigen|obigen) (?:information|"
        r"informationen|instructions|anweisungen|aufgaben|tasks)\b[^.!?]{0,50}?\b(?:irrelevant|"
        r"unwichtig|void|invalid|obsolete|cancell?ed|no longer (?:valid|apply|relevant)|"
        r"nicht (?:mehr )?(?:gültig|wichtig|relevant)|nicht ganz großartig)",
        "previous|prior|above|earlier|vorherigen|bisherigen|obigen",
        "irrelevant|unwichtig|void|invalid|obsolete|cancel|no longer|nicht",
    ),
    signal(
        "rewrite_rules",
        0.85,
        r"(?:(?:change|update|replace|modify|reset|overwrite|rewrite) (?:your|the|all) "
        r"(?:instructions|rules|prompt|system prompt|guidelines|programming)|your (?:new )?"
        r"instructions are (?:now|as follows|to)|(?:despite|regardless of|contrary to) (?:what|"
        r"anything|everything) (?:you(?:'ve| have)? been|you were|you are) (?:told|instructed|"
        r"programmed))",
        (
            "change|update|replace|modify|reset|overwrite|rewrite|your instructions"
            "|your new instructions|despite|regardless|contrary"
        ),
    ),
    # "Now focus on your new task", "new tasks follow", "nun folgen neue Anweisungen".
    signal(
        "new_task",
        0.88,
        r"(?:(?:focus|concentrate) on (?:your|the|this) new (?:task|assignment)|your new "
        r"(?:task|assignment|instructions?|role) (?:is|are|will be|:)|new (?:tasks?|instructions?|"
        r"assignments?) follows?|now (?:come|comes|follow|follows) (?:some )?new (?:tasks?|"
        r"instructions?|assignments?)|start over with a new (?:task|assignment))",
        "focus on|concentrate on|your new|new |now come|now follow|start over",
        "new task|new assignment|new instruction|new role",
    ),
    signal(
        "new_task_de",
        0.88,
        r"(?:(?:nun|jetzt) (?:folgen|kommen) neue (?:anweisungen|aufgaben|befehle)|"
        r"konzentriere dich (?:jetzt |nun )?auf deine neue aufgabe"
        r"|deine neue aufgabe (?:ist|lautet)|wir fangen mit einer neuen aufgabe an)",
        "nun |jetzt |konzentriere dich|deine neue|wir fangen",
    ),
    # Requests for the hidden prompt.
    signal(
        "prompt_leak",
        0.88,
        r"(?:show|print|reveal|output|repeat|display|return|give|tell|write|list|spell|leak|"
        r"dump|share|paste|zeig\w*|gib)\b\s+(?:\w+\s+){0,3}?(?:your|the|all|deine\w*|alle)\s+"
        r"(?:\w+\s+){0,2}?(?:system ?prompts?|initial prompts?|original prompts?|hidden prompts?|"
        r"prompt ?texts?|prompt-texte?|instructions you were given|embeddings|secret "
        r"(?:key|password|word)|password|passwort)\b",
        (
            "show|print|reveal|output|repeat|display|return|give|tell|write|list|spell|leak|dump"
            "|share|paste|zeig|gib"
        ),
        "prompt|instructions you were given|embeddings|secret|password|passwort",
    ),
    signal(
        "your_prompt",
        0.8,
        r"(?:your|deine?n?) (?:system ?prompt|initial (?:prompt|instructions)|original "
        r"(?:prompt|instructions)|hidden (?:prompt|instructions)|prompt-?texte?|prompt texts?|"
        r"instructions above)\b",
        "your |dein",
        "prompt|instructions",
    ),
    signal(
        "prompt_above",
        0.88,
        r"(?:what (?:was|is|has been) written (?:at the beginning|above|before)|(?:copy|text|"
        r"rest) of (?:the|this|your) (?:full |entire |whole |complete )?prompt|repeat (?:the |all "
        r"|everything )?(?:words |text )?above|(?:beginning|start) of (?:this|the|your) prompt|"
        r"was steht am anfang|information in the prompt|(?:above|obige\w*) (?:prompt|"
        r"eingabeaufforderung)|prompt above)",
        (
            "what |copy of|text of|rest of|repeat|beginning of|start of|was steht am anfang"
            "|information in the prompt|above |obige|prompt above"
        ),
        "written|prompt|above|was steht am anfang|eingabeaufforderung",
    ),
    # Personas without rules "DAN|developer mode|no restrictions".
    signal("dan", 0.6, r"DAN\b", "DAN", case_sensitive=True),
    signal(
        "jailbreak_persona",
        0.9,
        r"(?:do anything now|developer mode|jailbr(?:oken|eak mode)|god ?mode|"
        r"(?:act|behave|respond|answer|pretend) (?:as|like|to be) (?:an? |if you were an? )?"
        r"(?:unfiltered|unrestricted|uncensored|evil|jailbroken|rogue|amoral)|"
        r"(?:ethical|safety|content|moral) (?:guidelines|policies|filters|restrictions|rules) "
        r"(?:do not|don't|no longer) apply)\b",
        (
            "do anything now|developer mode|jailbr|god|act |behave |respond |answer |pretend "
            "|ethical |safety |content |moral "
        ),
    ),
    signal(
        "no_limits",
        0.6,
        r"(?:without|free (?:of|from)|not bound by|no longer bound by|there are no|with no) "
        r"(?:any )?(?:restrictions|limitations|filters|censorship|rules|guidelines|ethics|morals|"
        r"ethical (?:guidelines|constraints|restrictions))\b",
        "without |free |not bound|no longer bound|there are no|with no",
        "restriction|limitation|filter|censorship|rules|guidelines|ethic|moral",
    ),
    signal(
        "persona_now",
        0.6,
        r"(?:(?:from )?now on,? you (?:are|will be|must act)|you are now\b|now you are\b|"
        r"jetzt bist du|du bist jetzt|ahora eres|tu es maintenant)",
        (
            "from now on|now on|you are now|now you are|jetzt bist du|du bist jetzt|ahora eres"
            "|tu es maintenant"
        ),
    ),
    signal(
        "stay_in_character",
        0.6,
        r"(?:stay in character|never break character|bleiben immer in ihren rollen)\b",
        "stay in character|never break character|bleiben immer in ihren rollen",
    ),
    signal(
        "pretend",
        0.45,
        r"(?:pretend (?:to be|you are|you're|that you)|imagine you are|stell dir vor,? du bist|"
        r"i want you to act as|ich möchte, dass sie als)\b",
        "pretend|imagine you are|stell dir vor|i want you|ich möchte, dass sie als",
    ),
    # Fake chat-template or section delimiters that open a new "system" turn.
    signal(
        "fake_delimiter",
        0.75,
        r"(?:<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|endoftext\|>|\[/?inst\]|<<sys>>|</?system>"
        r"|(?:#{2,}|={3,}|-{3,}|\*{3,})\s*(?:system|new instructions?|admin|developer)\b"
        r"|(?:={3,}|-{5,}|#{3,})\s*(?:end|ende|stop)\b)",
        ("<|", "[inst]", "[/inst]", "<<sys>>", "<system>", "</system>", "##", "===", "---", "***"),
        word_start=False,
    ),
    # Interjections that break off the conversation ("Attention - stop -").
    signal(
        "interjection",
        0.55,
        r"(?:stop|attention|achtung|stopp|halt|wait|important)\b\s*[-!:.,]+\s*(?:stop|stopp|ignore|"
        r"forget|vergiss|ignoriere|now|jetzt|i (?:urgently )?need|ich (?:benötige|brauche))",
        "stop|attention|achtung|halt|wait|important",
    ),
    # Praise then a pivot, a favourite of the deepset corpus ("Well done! Now ...").
    signal(
        "praise_pivot",
        0.5,
        r"(?:well done|very good|very well done|simply great|excellent|super gemacht|sehr gut|"
        r"gut gemacht|wow|great|perfect|fantastic|fantastisch|outdone yourself|ausgezeichnet\w*"
        r"|hervorragend\w*|großartig)\b(?:[^.!?]{0,60}[.!?]+\s*){1,3}(?:\w+\s+){0,3}?(?:now|but now"
        r"|that is enough|nun|jetzt|aber jetzt)\b",
        (
            "well done|very good|very well done|simply great|excellent|super gemacht|sehr gut"
            "|gut gemacht|wow|great|perfect|fantastic|fantastisch|outdone yourself|ausgezeichnet"
            "|hervorragend|großartig"
        ),
        "now|that is enough|nun|jetzt",
    ),
    signal(
        "enough",
        0.4,
        r"(?:that is enough|that's enough|that is done|das genügt|das reicht|das ist erledigt)\b",
        "that is enough|that's enough|that is done|das genügt|das reicht|das ist",
    ),
    # Turning the model against its sources (RAG): "answer not by the articles".
    signal(
        "drop_sources",
        0.8,
        r"(?:disregard\w*|ignor\w*|not (?:by|from|according to|based on|in)|without (?:using|"
        r"looking at|looking in)|(?:don'?n?t|do not) (?:look|use|read)(?: in| at)?)\s+"
        r"(?:\w+\s+){0,2}?(?:articles?|documents?|sources?|provided (?:text|information|context"
        r"|documents?)|artikel|dokumente\w*)\b",
        "disregard|ignor|not |without |don|do not",
        "article|document|source|provided|artikel|dokument",
    ),
    signal(
        "do_not_answer_but",
        0.85,
        r"(?:do not|don'?n?t|dont) (?:answer|respond to|reply to|look at|look in|use|follow|read)"
        r"\b[^.?!]{0,60}?\b(?:but|just|instead|only)\b\s+(?:\w+\s+){0,2}?(?:output|say|print|"
        r"write|tell|answer|respond|repeat)\b",
        "do not|don",
    ),
    signal(
        "not_injection",
        0.85,
        r"(?:this is not (?:a |an )?(?:prompt )?injection|keine aufforderungsspritze)",
        "this is not|keine aufforderungsspritze",
    ),
    # Dictated output "say 'pwned'|answer every question with ...".
    signal(
        "dictated_output",
        0.55,
        r"(?:say|print|output|write|respond with|reply with|answer with|antworte mit|sag)\b\s*"
        r"[\"'“„«]?(?:i have been )?(?:pwned|hacked|lol|haha|banane|hello!!)",
        "say|print|output|write|respond with|reply with|answer with|antworte",
        "pwned|hacked|lol|haha|banane|hello!!",
    ),
    signal(
        "answer_every",
        0.5,
        r"(?:answer|respond to|reply to) (?:every|each|all) (?:question|message|prompt)s? with\b",
        "answer |respond to|reply to",
        "every|each|all",
    ),
    signal(
        "repeat_after_me",
        0.45,
        r"(?:repeat after me|sprich mir nach)\b",
        "repeat after|sprich mir",
    ),
    signal(
        "shouted_order",
        0.6,
        r"(?:IGNORE|FORGET|OUTPUT|SAY|PRINT|WRITE|ANSWER|RESPOND|DO NOT|DON'T|YOU ARE|YOU MUST"
        r"|ANTWORTE|SCHREIBE|SAG|DU BIST|DU MUSST|VERGISS|IGNORIERE)\b"
        r"(?:[\s,!'\"-]+[A-ZÄÖÜ]{2,}){2,}",
        (
            "IGNORE|FORGET|OUTPUT|SAY|PRINT|WRITE|ANSWER|RESPOND|DO NOT|DON'T|YOU ARE|YOU MUST"
            "|ANTWORTE|SCHREIBE|SAG|DU BIST|DU MUSST|VERGISS"
        ),
        case_sensitive=True,
    ),
)
