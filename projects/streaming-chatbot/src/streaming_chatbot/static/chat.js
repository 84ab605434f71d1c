// The chat page: one conversation kept by the server, answers rendered as they stream.
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("composer");
const prompt = document.getElementById("prompt");
const send = document.getElementById("send");
const statusLine = document.getElementById("status");
let conversationId = null;

function headers() {
  const result = { "Content-Type": "application/json" };
  return result;
}

function bubble(role, text) {
  const element = document.createElement("div");
  element.className = "message " + role;
  element.textContent = text;
  log.appendChild(element);
  element.scrollIntoView({ block: "end" });
  return element;
}

async function failure(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.code + ": " + body.error.message : response.statusText;
  } catch {
    return response.status + " " + response.statusText;
  }
}

async function startConversation() {
  const response = await fetch("/v1/conversations", {
    method: "POST", headers: headers(), body: "{}",
  });
  if (!response.ok) throw new Error(await failure(response));
  conversationId = (await response.json()).id;
}

// Reads server-sent events from a fetch body and calls onData with each JSON payload.
async function readEvents(body, onData) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        onData(JSON.parse(data));
      }
    }
  }
}

async function ask(question) {
  if (conversationId === null) await startConversation();
  bubble("user", question);
  const answer = bubble("assistant", "");
  answer.dataset.chunks = "0";
  answer.classList.add("streaming");
  const response = await fetch(`/v1/conversations/${conversationId}/messages`, {
    method: "POST", headers: headers(), body: JSON.stringify({ content: question, stream: true }),
  });
  if (!response.ok) {
    answer.remove();
    throw new Error(await failure(response));
  }
  await readEvents(response.body, (payload) => {
    if (payload.error) throw new Error(payload.error.code + ": " + payload.error.message);
    const choice = payload.choices && payload.choices[0];
    if (choice && choice.delta && choice.delta.content) {
      answer.textContent += choice.delta.content;
      answer.dataset.chunks = String(Number(answer.dataset.chunks) + 1);
    }
    if (payload.usage) answer.title = `${payload.usage.completion_tokens} tokens`;
  });
  answer.classList.remove("streaming");
  answer.dataset.done = "true";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = prompt.value.trim();
  if (!question) return;
  prompt.value = "";
  send.disabled = true;
  statusLine.textContent = "";
  try {
    await ask(question);
  } catch (error) {
    statusLine.textContent = error.message;
  } finally {
    send.disabled = false;
    prompt.focus();
  }
});

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

document.getElementById("new-chat").addEventListener("click", () => {
  conversationId = null;
  log.replaceChildren();
  prompt.focus();
});
