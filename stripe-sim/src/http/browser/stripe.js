/* A stand-in for Stripe.js v3, served by flashgate's Stripe emulator at /js/v3/ so that
 * pages built on Stripe's Payment Element can be used and tested offline. It implements
 * what such a page calls: Stripe(key), stripe.elements({clientSecret, locale}),
 * elements.create("payment").mount(), elements.submit(), stripe.confirmPayment({elements,
 * confirmParams, redirect}), stripe.handleNextAction({clientSecret}) and
 * stripe.retrievePaymentIntent(clientSecret), against the emulator's own API with the
 * publishable key and the client secret, as Stripe.js does. The card form takes Stripe's
 * test card numbers (https://docs.stripe.com/testing) and maps them to their test
 * PaymentMethods; a card that needs 3-D Secure opens the emulator's authentication page
 * in a frame over the page, as Stripe.js opens the bank's. It is not Stripe.js: in
 * production the page loads https://js.stripe.com/v3/. */
(function () {
  "use strict";
  var script = document.currentScript;
  var API = script && script.src ? new URL(script.src).origin : location.origin;

  var CARDS = {
    "4242424242424242": "pm_card_visa",
    "4000056655665556": "pm_card_visa_debit",
    "5555555555554444": "pm_card_mastercard",
    "5200828282828210": "pm_card_mastercard_debit",
    "378282246310005": "pm_card_amex",
    "6011111111111117": "pm_card_discover",
    "3566002020360505": "pm_card_jcb",
    "6200000000000005": "pm_card_unionpay",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000009987": "pm_card_chargeDeclinedLostCard",
    "4000000000009979": "pm_card_chargeDeclinedStolenCard",
    "4100000000000019": "pm_card_chargeDeclinedFraudulent",
    "4000000000000069": "pm_card_chargeDeclinedExpiredCard",
    "4000000000000127": "pm_card_chargeDeclinedIncorrectCvc",
    "4000000000000119": "pm_card_chargeDeclinedProcessingError",
    "4000002760003184": "pm_card_authenticationRequired",
    "4000000000003220": "pm_card_threeDSecure2Required"
  };

  var TEXT = {
    en: { number: "Card number", expiry: "Expiration date (MM / YY)", cvc: "Security code",
          invalid_number: "Your card number is invalid.", incomplete_number: "Your card number is incomplete.",
          invalid_expiry: "Your card's expiration date is invalid.", expired: "Your card's expiration year is in the past.",
          incomplete_cvc: "Your card's security code is incomplete.",
          live_card: "Your card was declined. Your request was in test mode, but used a non test card.",
          authentication: "We are unable to authenticate your payment method. Please choose a different payment method and try again.",
          close: "Cancel" },
    de: { number: "Kartennummer", expiry: "Ablaufdatum (MM / JJ)", cvc: "Sicherheitscode",
          invalid_number: "Ihre Kartennummer ist ungültig.", incomplete_number: "Ihre Kartennummer ist unvollständig.",
          invalid_expiry: "Das Ablaufdatum Ihrer Karte ist ungültig.", expired: "Das Ablaufjahr Ihrer Karte liegt in der Vergangenheit.",
          incomplete_cvc: "Der Sicherheitscode Ihrer Karte ist unvollständig.",
          live_card: "Ihre Karte wurde abgelehnt. Im Testmodus wurde eine echte Karte verwendet.",
          authentication: "Wir können Ihre Zahlungsmethode nicht authentifizieren. Bitte wählen Sie eine andere Zahlungsmethode.",
          close: "Abbrechen" },
    fr: { number: "Numéro de carte", expiry: "Date d'expiration (MM / AA)", cvc: "Code de sécurité",
          invalid_number: "Le numéro de votre carte est invalide.", incomplete_number: "Le numéro de votre carte est incomplet.",
          invalid_expiry: "La date d'expiration de votre carte est invalide.", expired: "L'année d'expiration de votre carte est passée.",
          incomplete_cvc: "Le code de sécurité de votre carte est incomplet.",
          live_card: "Votre carte a été refusée : une vraie carte a été utilisée en mode test.",
          authentication: "Nous ne pouvons pas authentifier votre moyen de paiement. Veuillez en choisir un autre.",
          close: "Annuler" },
    es: { number: "Número de tarjeta", expiry: "Fecha de caducidad (MM / AA)", cvc: "Código de seguridad",
          invalid_number: "El número de tu tarjeta no es válido.", incomplete_number: "El número de tu tarjeta está incompleto.",
          invalid_expiry: "La fecha de caducidad de tu tarjeta no es válida.", expired: "El año de caducidad de tu tarjeta ya ha pasado.",
          incomplete_cvc: "El código de seguridad de tu tarjeta está incompleto.",
          live_card: "Tu tarjeta fue rechazada: se usó una tarjeta real en modo de prueba.",
          authentication: "No podemos autenticar tu método de pago. Elige otro método de pago.",
          close: "Cancelar" },
    ja: { number: "カード番号", expiry: "有効期限 (MM / YY)", cvc: "セキュリティコード",
          invalid_number: "カード番号が無効です。", incomplete_number: "カード番号が不完全です。",
          invalid_expiry: "カードの有効期限が無効です。", expired: "カードの有効期限が切れています。",
          incomplete_cvc: "セキュリティコードが不完全です。",
          live_card: "カードが拒否されました。テストモードで実際のカードが使用されました。",
          authentication: "お支払い方法を認証できませんでした。別のお支払い方法をお選びください。",
          close: "キャンセル" }
  };

  function digits(value) { return String(value || "").replace(/\D/g, ""); }

  function luhn(number) {
    var sum = 0;
    for (var i = 0; i < number.length; i++) {
      var d = Number(number[number.length - 1 - i]);
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return number.length >= 12 && sum % 10 === 0;
  }

  function validationError(code, message) {
    return { type: "validation_error", code: code, message: message };
  }

  function form(params) {
    var body = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k] != null) body.append(k, params[k]); });
    return body;
  }

  function intentId(clientSecret) { return String(clientSecret || "").split("_secret_")[0]; }

  // --- The Payment Element: a card form in the page --------------------------------------
  function PaymentElement(group) {
    this.group = group;
    this.handlers = {};
    this.root = null;
  }
  PaymentElement.prototype.on = function (event, handler) {
    (this.handlers[event] = this.handlers[event] || []).push(handler);
    return this;
  };
  PaymentElement.prototype.emit = function (event, payload) {
    (this.handlers[event] || []).forEach(function (h) { h(payload); });
  };
  PaymentElement.prototype.mount = function (target) {
    var host = typeof target === "string" ? document.querySelector(target) : target;
    if (!host) throw new Error("Stripe stand-in: mount target not found: " + target);
    var t = this.group.text, self = this;
    var root = document.createElement("div");
    root.className = "StripeElement sim-payment-element";
    function field(name, label, autocomplete, placeholder) {
      var wrap = document.createElement("label");
      wrap.style.cssText = "display:block;text-align:left;margin:.5rem 0;font-size:.9rem";
      wrap.textContent = label;
      var input = document.createElement("input");
      input.name = name;
      input.autocomplete = autocomplete;
      input.inputMode = "numeric";
      input.placeholder = placeholder;
      input.style.cssText = "display:block;width:100%;box-sizing:border-box;font:inherit;padding:.5rem;margin-top:.25rem;border:1px solid #767680;border-radius:6px";
      input.addEventListener("input", function () { self.emit("change", self.state()); });
      wrap.appendChild(input);
      root.appendChild(wrap);
      return input;
    }
    this.number = field("cardnumber", t.number, "cc-number", "1234 1234 1234 1234");
    this.expiry = field("exp-date", t.expiry, "cc-exp", "MM / YY");
    this.cvc = field("cvc", t.cvc, "cc-csc", "CVC");
    host.appendChild(root);
    this.root = root;
    this.emit("ready", { elementType: "payment" });
    return this;
  };
  PaymentElement.prototype.unmount = function () {
    if (this.root && this.root.parentNode) this.root.parentNode.removeChild(this.root);
    this.root = null;
  };
  PaymentElement.prototype.destroy = PaymentElement.prototype.unmount;
  PaymentElement.prototype.focus = function () { if (this.number) this.number.focus(); };
  PaymentElement.prototype.clear = function () {
    [this.number, this.expiry, this.cvc].forEach(function (i) { if (i) i.value = ""; });
  };
  PaymentElement.prototype.state = function () {
    var empty = !digits(this.number.value) && !digits(this.expiry.value) && !digits(this.cvc.value);
    return { elementType: "payment", empty: empty, complete: !this.check(), value: { type: "card" } };
  };
  // The first problem with what was typed, as Stripe.js reports it, or null.
  PaymentElement.prototype.check = function () {
    var t = this.group.text;
    if (!this.root) return validationError("incomplete", t.incomplete_number);
    var number = digits(this.number.value);
    if (number.length < 15) return validationError("incomplete_number", t.incomplete_number);
    if (!luhn(number)) return validationError("invalid_number", t.invalid_number);
    var exp = digits(this.expiry.value);
    var month = Number(exp.slice(0, 2)), year = 2000 + Number(exp.slice(2, 4));
    if (exp.length !== 4 || month < 1 || month > 12) return validationError("invalid_expiry", t.invalid_expiry);
    var now = new Date();
    if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
      return validationError("invalid_expiry_year_past", t.expired);
    }
    var cvc = digits(this.cvc.value);
    if (cvc.length < 3 || cvc.length > 4) return validationError("incomplete_cvc", t.incomplete_cvc);
    return null;
  };
  PaymentElement.prototype.paymentMethod = function () {
    return CARDS[digits(this.number.value)] || null;
  };

  function Elements(stripe, options) {
    this.stripe = stripe;
    this.options = options || {};
    var lang = String(this.options.locale || document.documentElement.lang || "en").slice(0, 2);
    this.text = TEXT[lang] || TEXT.en;
    this.element = null;
  }
  Elements.prototype.create = function (type) {
    if (type !== "payment") throw new Error("Stripe stand-in: only the payment element is implemented");
    this.element = new PaymentElement(this);
    return this.element;
  };
  Elements.prototype.getElement = function (type) { return type === "payment" ? this.element : null; };
  Elements.prototype.update = function (options) { Object.assign(this.options, options); };
  Elements.prototype.submit = function () {
    var problem = this.element ? this.element.check() : validationError("incomplete", this.text.incomplete_number);
    return Promise.resolve(problem ? { error: problem } : {});
  };

  // --- The 3-D Secure step: the emulator's page in a frame over the page ------------------
  function authenticate(intent, text) {
    var url = intent.next_action && intent.next_action.redirect_to_url && intent.next_action.redirect_to_url.url;
    if (!url) return Promise.resolve();
    return new Promise(function (resolve) {
      var overlay = document.createElement("div");
      overlay.className = "sim-3ds-overlay";
      overlay.setAttribute("role", "dialog");
      overlay.setAttribute("aria-modal", "true");
      overlay.setAttribute("aria-label", "3D Secure");
      overlay.style.cssText = "position:fixed;inset:0;background:rgba(0,0,0,.5);display:flex;align-items:center;justify-content:center;z-index:2147483647";
      var box = document.createElement("div");
      box.style.cssText = "background:#fff;border-radius:8px;padding:.5rem;width:min(26rem,92vw)";
      var frame = document.createElement("iframe");
      frame.title = "3D Secure";
      frame.src = url;
      frame.style.cssText = "border:0;width:100%;height:14rem";
      var close = document.createElement("button");
      close.type = "button";
      close.textContent = text.close;
      box.appendChild(frame);
      box.appendChild(close);
      overlay.appendChild(box);
      // Focus moves into the dialog and back where it was when the dialog closes, so
      // the step can be done from the keyboard (Escape cancels it).
      var before = document.activeElement;
      document.body.appendChild(overlay);
      frame.focus();
      function done() {
        window.removeEventListener("message", listen);
        document.removeEventListener("keydown", escape);
        if (overlay.parentNode) overlay.parentNode.removeChild(overlay);
        if (before && before.focus) before.focus();
        resolve();
      }
      function escape(event) { if (event.key === "Escape") done(); }
      document.addEventListener("keydown", escape);
      function listen(event) {
        var data = event.data || {};
        if (data.type === "stripe-sim-3ds" && data.payment_intent === intent.id) done();
      }
      window.addEventListener("message", listen);
      close.addEventListener("click", done);
    });
  }

  function Stripe(key, options) {
    if (!(this instanceof Stripe)) return new Stripe(key, options);
    if (!/^pk_test_/.test(String(key))) throw new Error("Stripe stand-in: a pk_test_ publishable key is required");
    this.key = key;
    this.options = options || {};
  }
  Stripe.prototype.elements = function (options) { return new Elements(this, options); };
  Stripe.prototype.retrievePaymentIntent = function (clientSecret) {
    var url = API + "/v1/payment_intents/" + encodeURIComponent(intentId(clientSecret)) + "?" +
      form({ key: this.key, client_secret: clientSecret }).toString();
    return fetch(url).then(function (r) {
      return r.json().then(function (body) { return r.ok ? { paymentIntent: body } : { error: body.error }; });
    });
  };
  // What a confirm ended with, as Stripe.js answers it.
  Stripe.prototype.settle = function (clientSecret, text) {
    return this.retrievePaymentIntent(clientSecret).then(function (got) {
      var intent = got.paymentIntent;
      if (!intent) return got;
      if (intent.status === "requires_payment_method" && intent.last_payment_error) {
        return { error: Object.assign({}, intent.last_payment_error, { payment_intent: intent }) };
      }
      if (intent.status === "requires_action") {
        return { error: { type: "invalid_request_error", code: "payment_intent_authentication_failure",
                          message: text.authentication, payment_intent: intent } };
      }
      return { paymentIntent: intent };
    });
  };
  Stripe.prototype.handleNextAction = function (options) {
    var self = this, secret = options && options.clientSecret, text = TEXT.en;
    return this.retrievePaymentIntent(secret).then(function (got) {
      if (!got.paymentIntent) return got;
      return authenticate(got.paymentIntent, text).then(function () { return self.settle(secret, text); });
    });
  };
  Stripe.prototype.confirmPayment = function (options) {
    var self = this, elements = options && options.elements;
    if (!elements || !elements.element) return Promise.reject(new Error("Stripe stand-in: confirmPayment needs elements"));
    var text = elements.text, secret = options.clientSecret || elements.options.clientSecret;
    var params = options.confirmParams || {};
    var problem = elements.element.check();
    if (problem) return Promise.resolve({ error: problem });
    var method = elements.element.paymentMethod();
    if (!method) {
      return Promise.resolve({ error: { type: "card_error", code: "card_declined", decline_code: "live_mode_test_card",
                                        message: text.live_card } });
    }
    var url = API + "/v1/payment_intents/" + encodeURIComponent(intentId(secret)) + "/confirm";
    var body = form({ key: this.key, client_secret: secret, payment_method: method, return_url: params.return_url });
    return fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: body })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (answer) {
        if (!answer.ok) return { error: answer.body.error };
        var intent = answer.body;
        var settled = intent.status === "requires_action"
          ? authenticate(intent, text).then(function () { return self.settle(secret, text); })
          : Promise.resolve({ paymentIntent: intent });
        return settled.then(function (result) {
          if (result.paymentIntent && options.redirect !== "if_required" && params.return_url) {
            var back = new URL(params.return_url, location.href);
            back.searchParams.set("payment_intent", result.paymentIntent.id);
            back.searchParams.set("payment_intent_client_secret", secret);
            back.searchParams.set("redirect_status", result.paymentIntent.status);
            location.assign(back.toString());
          }
          return result;
        });
      });
  };

  window.Stripe = Stripe;
})();
